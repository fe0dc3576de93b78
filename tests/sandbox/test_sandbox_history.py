"""users.history.list: ids with gaps, filters, pagination and expiry."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import requests
from gmail_sandbox_helpers import ALICE
from googleapiclient.errors import HttpError

from inboxsync.local.sandbox import FakeClock, SandboxAdmin, SandboxServer

DAY_S = 86_400


def _all_history(gmail: Any, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every record from all pages, and how many pages it took."""
    records: list[dict[str, Any]] = []
    pages = 0
    request = gmail.users().history().list(userId="me", **params)
    while request is not None:
        page = request.execute()
        pages += 1
        records += page.get("history", [])
        request = gmail.users().history().list_next(request, page)
    return records, pages


def _start(sandbox_admin: SandboxAdmin) -> str:
    return str(sandbox_admin.get_mailbox(ALICE)["history_id"])


def test_history_ids_increase_with_gaps(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    start = _start(sandbox_admin)
    delivered = sandbox_admin.deliver(ALICE, count=30)

    records, _ = _all_history(gmail, startHistoryId=start)

    ids = [int(record["id"]) for record in records]
    assert ids == sorted(set(ids))
    assert ids[0] > int(start)
    assert any(later - earlier > 1 for earlier, later in itertools.pairwise(ids))
    assert ids[-1] == int(delivered.history_id)
    added = [r["messagesAdded"][0]["message"]["id"] for r in records]
    assert added == delivered.message_ids


def test_history_record_shape_for_a_new_message(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    start = _start(sandbox_admin)
    delivery = sandbox_admin.deliver(ALICE, labels=["INBOX", "UNREAD"])
    message_id = delivery.message_ids[0]

    page = gmail.users().history().list(userId="me", startHistoryId=start).execute()

    assert page == {
        "historyId": delivery.history_id,
        "history": [
            {
                "id": delivery.history_id,
                "messages": [{"id": message_id, "threadId": message_id}],
                "messagesAdded": [
                    {
                        "message": {
                            "id": message_id,
                            "threadId": message_id,
                            "labelIds": ["INBOX", "UNREAD"],
                        }
                    }
                ],
            }
        ],
    }


def test_history_list_paginates(gmail: Any, sandbox_admin: SandboxAdmin) -> None:
    start = _start(sandbox_admin)
    sandbox_admin.deliver(ALICE, count=25)

    records, pages = _all_history(gmail, startHistoryId=start, maxResults=10)

    assert pages == 3
    assert len(records) == 25


def test_history_page_carries_the_current_history_id(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    start = _start(sandbox_admin)
    latest = sandbox_admin.deliver(ALICE, count=3).history_id

    first = (
        gmail.users()
        .history()
        .list(userId="me", startHistoryId=start, maxResults=1)
        .execute()
    )

    assert first["historyId"] == latest
    assert "nextPageToken" in first


def test_history_from_the_current_id_is_empty(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    latest = sandbox_admin.deliver(ALICE).history_id

    page = gmail.users().history().list(userId="me", startHistoryId=latest).execute()

    assert page == {"historyId": latest}


def test_history_types_filter(gmail: Any, sandbox_admin: SandboxAdmin) -> None:
    start = _start(sandbox_admin)
    kept, deleted = sandbox_admin.deliver(ALICE, count=2).message_ids
    gmail.users().messages().modify(
        userId="me", id=kept, body={"addLabelIds": ["STARRED"]}
    ).execute()
    sandbox_admin.delete_message(ALICE, deleted)

    added, _ = _all_history(gmail, startHistoryId=start, historyTypes=["messageAdded"])
    removed_or_labelled, _ = _all_history(
        gmail, startHistoryId=start, historyTypes=["messageDeleted", "labelAdded"]
    )

    assert [list(r) for r in added] == [["id", "messages", "messagesAdded"]] * 2
    assert removed_or_labelled[0]["labelsAdded"][0]["labelIds"] == ["STARRED"]
    assert removed_or_labelled[1]["messagesDeleted"][0]["message"]["id"] == deleted


def test_history_label_filter(gmail: Any, sandbox_admin: SandboxAdmin) -> None:
    start = _start(sandbox_admin)
    sandbox_admin.deliver(ALICE, labels=["SENT"])
    inbox = sandbox_admin.deliver(ALICE, labels=["INBOX"]).message_ids[0]

    records, _ = _all_history(gmail, startHistoryId=start, labelId="INBOX")

    assert [r["messages"][0]["id"] for r in records] == [inbox]


@pytest.mark.parametrize(
    "params", [{}, {"startHistoryId": "abc"}, {"startHistoryId": "-5"}]
)
def test_missing_or_invalid_start_id_is_400(gmail: Any, params: dict[str, str]) -> None:
    with pytest.raises(HttpError) as caught:
        gmail.users().history().list(userId="me", **params).execute()

    assert caught.value.resp.status == 400


def test_invalid_history_type_is_400(
    sandbox: SandboxServer, sandbox_admin: SandboxAdmin, alice: str
) -> None:
    # googleapiclient refuses unknown enum values itself, so go around it.
    url = f"{sandbox.url}gmail/v1/users/me/history"
    params = {"startHistoryId": _start(sandbox_admin), "historyTypes": "bogus"}

    response = requests.get(
        url, params=params, headers={"X-Sandbox-User": ALICE}, timeout=5
    )

    assert response.status_code == 400
    assert "bogus" in response.json()["error"]["message"]


def test_expired_history_is_404_with_gmail_error_body(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    start = _start(sandbox_admin)
    latest = sandbox_admin.deliver(ALICE, count=3).history_id
    sandbox_admin.expire_history(ALICE)

    with pytest.raises(HttpError) as caught:
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    still_fine = (
        gmail.users().history().list(userId="me", startHistoryId=latest).execute()
    )

    assert caught.value.resp.status == 404
    assert caught.value.error_details == [
        {
            "message": "Requested entity was not found.",
            "domain": "global",
            "reason": "notFound",
        }
    ]
    assert still_fine == {"historyId": latest}


def test_expire_history_before_a_given_id(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    start = _start(sandbox_admin)
    first = sandbox_admin.deliver(ALICE).history_id
    second = sandbox_admin.deliver(ALICE)

    sandbox_admin.expire_history(ALICE, before_id=first)

    with pytest.raises(HttpError) as caught:
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    records, _ = _all_history(gmail, startHistoryId=first)
    assert caught.value.resp.status == 404
    assert [r["messages"][0]["id"] for r in records] == second.message_ids


def test_history_older_than_retention_is_404(
    gmail: Any, sandbox_admin: SandboxAdmin, fake_clock: FakeClock
) -> None:
    start = _start(sandbox_admin)
    sandbox_admin.deliver(ALICE)
    fake_clock.advance(6 * DAY_S)
    recent_start = sandbox_admin.get_mailbox(ALICE)["history_id"]
    sandbox_admin.deliver(ALICE)

    fine_at_six_days = (
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    )
    fake_clock.advance(2 * DAY_S)

    with pytest.raises(HttpError) as caught:
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    assert len(fine_at_six_days["history"]) == 2
    assert caught.value.resp.status == 404
    records, _ = _all_history(gmail, startHistoryId=recent_start)
    assert len(records) == 1


def test_admin_clock_advance_also_expires_history(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    start = _start(sandbox_admin)
    sandbox_admin.deliver(ALICE)

    sandbox_admin.advance_clock(8 * DAY_S)

    with pytest.raises(HttpError) as caught:
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    assert caught.value.resp.status == 404


def test_max_results_is_capped_at_500(gmail: Any, sandbox_admin: SandboxAdmin) -> None:
    start = _start(sandbox_admin)
    sandbox_admin.deliver(ALICE, count=501)

    page = (
        gmail.users()
        .history()
        .list(userId="me", startHistoryId=start, maxResults=1000)
        .execute()
    )

    assert len(page["history"]) == 500
    assert "nextPageToken" in page


def test_default_page_is_100(gmail: Any, sandbox_admin: SandboxAdmin) -> None:
    start = _start(sandbox_admin)
    sandbox_admin.deliver(ALICE, count=101)

    page = gmail.users().history().list(userId="me", startHistoryId=start).execute()

    assert len(page["history"]) == 100
