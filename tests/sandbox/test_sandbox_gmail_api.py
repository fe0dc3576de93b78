"""The Gmail methods, called through the real googleapiclient over HTTP."""

from __future__ import annotations

import base64
import email
import email.policy
from typing import Any

import pytest
import requests
from gmail_sandbox_helpers import ALICE, BOB, TOPIC, gmail_service
from googleapiclient.errors import HttpError

from inboxsync.local.sandbox import FakeClock, SandboxAdmin, SandboxServer

DAY_S = 86_400


def _status(error: HttpError) -> int:
    return int(error.resp.status)


def test_get_profile_counts_messages_and_threads(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    first = sandbox_admin.deliver(ALICE, subject="one")
    sandbox_admin.deliver(ALICE, subject="reply", thread_id=first.message_ids[0])
    sandbox_admin.deliver(ALICE, subject="two")

    profile = gmail.users().getProfile(userId="me").execute()

    assert profile["emailAddress"] == ALICE
    assert profile["messagesTotal"] == 3
    assert profile["threadsTotal"] == 2
    assert profile["historyId"] == sandbox_admin.get_mailbox(ALICE)["history_id"]


def test_explicit_user_id_works_without_credentials(
    sandbox: SandboxServer, alice: str
) -> None:
    service = gmail_service(sandbox, None)

    profile = service.users().getProfile(userId=alice).execute()

    assert profile["emailAddress"] == alice
    service.close()


def test_sandbox_user_header_selects_the_mailbox(
    sandbox: SandboxServer, alice: str
) -> None:
    url = f"{sandbox.url}gmail/v1/users/me/profile"

    response = requests.get(url, headers={"X-Sandbox-User": alice}, timeout=5)

    assert response.status_code == 200
    assert response.json()["emailAddress"] == alice


def test_me_without_identity_is_401(sandbox: SandboxServer, alice: str) -> None:
    service = gmail_service(sandbox, None)

    with pytest.raises(HttpError) as caught:
        service.users().getProfile(userId="me").execute()

    assert _status(caught.value) == 401
    service.close()


def test_foreign_bearer_token_is_401(sandbox: SandboxServer, alice: str) -> None:
    url = f"{sandbox.url}gmail/v1/users/me/profile"

    response = requests.get(url, headers={"Authorization": "Bearer ya29.x"}, timeout=5)

    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_token_for_another_user_is_403(
    sandbox: SandboxServer, sandbox_admin: SandboxAdmin, gmail: Any
) -> None:
    sandbox_admin.create_mailbox(BOB)

    with pytest.raises(HttpError) as caught:
        gmail.users().getProfile(userId=BOB).execute()

    assert _status(caught.value) == 403


def test_unknown_mailbox_is_a_failed_precondition(sandbox: SandboxServer) -> None:
    service = gmail_service(sandbox, "nobody@example.com")

    with pytest.raises(HttpError) as caught:
        service.users().getProfile(userId="me").execute()

    assert _status(caught.value) == 400
    assert caught.value.error_details[0]["reason"] == "failedPrecondition"
    service.close()


def test_labels_list_has_system_labels_and_creates_user_labels_on_demand(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    delivery = sandbox_admin.deliver(ALICE, labels=["INBOX", "Receipts", "receipts"])

    labels = gmail.users().labels().list(userId="me").execute()["labels"]

    by_id = {label["id"]: label for label in labels}
    for system in ("INBOX", "UNREAD", "SENT", "SPAM", "TRASH", "IMPORTANT", "STARRED"):
        assert by_id[system]["type"] == "system"
    assert by_id["Label_1"] == {
        "id": "Label_1",
        "name": "Receipts",
        "type": "user",
        "messageListVisibility": "show",
        "labelListVisibility": "labelShow",
    }
    assert delivery.label_ids == ["INBOX", "Label_1"]


def test_watch_returns_history_id_and_seven_day_expiry_and_notifies_once(
    gmail: Any, sandbox: SandboxServer, fake_clock: FakeClock, recording_publisher: Any
) -> None:
    now_ms = int(fake_clock() * 1000)

    answer = gmail.users().watch(userId="me", body={"topicName": TOPIC}).execute()

    assert (
        answer["historyId"]
        == gmail.users().getProfile(userId="me").execute()["historyId"]
    )
    assert int(answer["expiration"]) == now_ms + 7 * DAY_S * 1000
    assert len(recording_publisher.published) == 1
    topic, data = recording_publisher.published[0]
    assert topic == TOPIC
    assert data == (
        b'{"emailAddress":"alice@example.com","historyId":'
        + answer["historyId"].encode()
        + b"}"
    )


def test_watch_rejects_a_bad_topic(gmail: Any) -> None:
    with pytest.raises(HttpError) as caught:
        gmail.users().watch(userId="me", body={"topicName": "my-topic"}).execute()

    assert _status(caught.value) == 400


def test_stop_ends_notifications(
    gmail: Any,
    sandbox_admin: SandboxAdmin,
    fake_clock: FakeClock,
    recording_publisher: Any,
) -> None:
    gmail.users().watch(userId="me", body={"topicName": TOPIC}).execute()
    fake_clock.advance(5)

    result = gmail.users().stop(userId="me").execute()
    sandbox_admin.deliver(ALICE)

    assert not result
    assert len(recording_publisher.published) == 1
    assert sandbox_admin.get_mailbox(ALICE)["watch"] is None


def test_messages_list_is_newest_first_with_pagination(
    gmail: Any, sandbox_admin: SandboxAdmin, fake_clock: FakeClock
) -> None:
    delivered: list[str] = []
    for _ in range(7):
        delivered += sandbox_admin.deliver(ALICE).message_ids
        fake_clock.advance(60)

    pages: list[list[str]] = []
    request = gmail.users().messages().list(userId="me", maxResults=3)
    while request is not None:
        page = request.execute()
        pages.append([m["id"] for m in page["messages"]])
        assert page["resultSizeEstimate"] == 7
        request = gmail.users().messages().list_next(request, page)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [m for page in pages for m in page] == list(reversed(delivered))


def test_messages_list_same_timestamp_keeps_delivery_order(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    delivered = sandbox_admin.deliver(ALICE, count=5).message_ids

    first = gmail.users().messages().list(userId="me", maxResults=2).execute()
    rest = (
        gmail.users()
        .messages()
        .list(userId="me", maxResults=10, pageToken=first["nextPageToken"])
        .execute()
    )

    listed = [m["id"] for m in first["messages"] + rest["messages"]]
    assert listed == list(reversed(delivered))
    assert "nextPageToken" not in rest


def test_messages_list_empty_mailbox(gmail: Any) -> None:
    page = gmail.users().messages().list(userId="me").execute()

    assert page == {"resultSizeEstimate": 0}


def _ids(gmail: Any, **params: Any) -> set[str]:
    page = gmail.users().messages().list(userId="me", **params).execute()
    return {m["id"] for m in page.get("messages", [])}


def test_messages_list_search_operators(
    gmail: Any, sandbox_admin: SandboxAdmin, fake_clock: FakeClock
) -> None:
    start_s = int(fake_clock())
    old = sandbox_admin.deliver(
        ALICE, sender="Carol <carol@shop.example>", subject="Invoice", labels=["INBOX"]
    ).message_ids[0]
    fake_clock.advance(3 * DAY_S)
    with_file = sandbox_admin.deliver(
        ALICE,
        sender="dave@example.org",
        labels=["INBOX", "UNREAD", "Project X"],
        attachments=[
            {"filename": "plan.pdf", "content_type": "application/pdf", "size": 64}
        ],
    ).message_ids[0]
    fake_clock.advance(2 * 3600)
    recent = sandbox_admin.deliver(ALICE, body="quarterly numbers").message_ids[0]

    assert _ids(gmail, q=f"after:{start_s + 1}") == {with_file, recent}
    assert _ids(gmail, q=f"before:{start_s + 1}") == {old}
    assert _ids(gmail, q="newer_than:1h") == {recent}
    assert _ids(gmail, q="newer_than:3h") == {with_file, recent}
    assert _ids(gmail, q="newer_than:4d") == {old, with_file, recent}
    assert _ids(gmail, q="older_than:1d") == {old}
    assert _ids(gmail, q="from:carol@shop.example") == {old}
    assert _ids(gmail, q="has:attachment") == {with_file}
    assert _ids(gmail, q="label:project-x") == {with_file}
    assert _ids(gmail, q='label:"unknown"') == set()
    assert _ids(gmail, q="is:unread") == {with_file, recent}
    assert _ids(gmail, q="QUARTERLY") == {recent}
    assert _ids(gmail, q="has:attachment from:dave") == {with_file}
    assert _ids(gmail, labelIds=["INBOX", "UNREAD"]) == {with_file, recent}


def test_messages_list_after_a_calendar_date(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    # 2025-06-15 and 2025-06-16, UTC midday.
    june_15 = sandbox_admin.deliver(ALICE, internal_date_ms=1_749_988_800_000)
    june_16 = sandbox_admin.deliver(ALICE, internal_date_ms=1_750_075_200_000)

    assert _ids(gmail, q="after:2025/06/16") == set(june_16.message_ids)
    assert _ids(gmail, q="after:2025/06/15") == set(
        june_15.message_ids + june_16.message_ids
    )


def test_messages_list_hides_spam_and_trash_unless_asked(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    inbox = sandbox_admin.deliver(ALICE).message_ids[0]
    spam = sandbox_admin.deliver(ALICE, labels=["SPAM"]).message_ids[0]

    assert _ids(gmail) == {inbox}
    assert _ids(gmail, includeSpamTrash=True) == {inbox, spam}
    assert _ids(gmail, labelIds=["SPAM"]) == {spam}
    assert _ids(gmail, q="in:spam") == {spam}


def test_messages_list_rejects_unsupported_operators(gmail: Any) -> None:
    with pytest.raises(HttpError) as caught:
        gmail.users().messages().list(userId="me", q="larger:10M").execute()

    assert _status(caught.value) == 400


def test_get_minimal(
    gmail: Any, sandbox_admin: SandboxAdmin, fake_clock: FakeClock
) -> None:
    delivery = sandbox_admin.deliver(ALICE, body="Short and sweet.")
    message_id = delivery.message_ids[0]

    message = (
        gmail.users()
        .messages()
        .get(userId="me", id=message_id, format="minimal")
        .execute()
    )

    assert message["id"] == message_id
    assert message["threadId"] == message_id
    assert message["labelIds"] == ["INBOX", "UNREAD"]
    assert message["snippet"] == "Short and sweet."
    assert message["historyId"] == delivery.history_id
    assert message["internalDate"] == str(int(fake_clock() * 1000))
    assert message["sizeEstimate"] > 0
    assert "payload" not in message


def test_get_metadata_filters_headers(gmail: Any, sandbox_admin: SandboxAdmin) -> None:
    message_id = sandbox_admin.deliver(ALICE, subject="Quarterly report").message_ids[0]

    message = (
        gmail.users()
        .messages()
        .get(
            userId="me",
            id=message_id,
            format="metadata",
            metadataHeaders=["Subject", "from"],
        )
        .execute()
    )

    headers = {h["name"]: h["value"] for h in message["payload"]["headers"]}
    assert headers == {"From": "sender@example.com", "Subject": "Quarterly report"}
    assert "parts" not in message["payload"]


def test_get_full_shows_attachment_parts(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    content = b"%PDF-1.4 tiny"
    message_id = sandbox_admin.deliver(
        ALICE,
        subject="Files",
        body="See attached.",
        attachments=[
            {
                "filename": "big.bin",
                "content_type": "application/octet-stream",
                "size": 5000,
            },
            {
                "filename": "tiny.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(content).decode(),
            },
        ],
    ).message_ids[0]

    message = (
        gmail.users()
        .messages()
        .get(userId="me", id=message_id, format="full")
        .execute()
    )

    payload = message["payload"]
    assert payload["mimeType"] == "multipart/mixed"
    text, big, tiny = payload["parts"]
    assert text["mimeType"] == "text/plain"
    assert base64.urlsafe_b64decode(text["body"]["data"]).strip() == b"See attached."
    assert (big["partId"], big["filename"], big["body"]["size"]) == (
        "1",
        "big.bin",
        5000,
    )
    assert tiny["filename"] == "tiny.pdf"
    assert tiny["mimeType"] == "application/pdf"
    assert tiny["body"]["size"] == len(content)
    assert "data" not in tiny["body"]

    attachment = (
        gmail.users()
        .messages()
        .attachments()
        .get(userId="me", messageId=message_id, id=tiny["body"]["attachmentId"])
        .execute()
    )
    assert base64.urlsafe_b64decode(attachment["data"]) == content


def test_get_raw_round_trips_a_raw_delivery(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    raw = (
        b"From: Erin <erin@example.net>\r\nTo: alice@example.com\r\n"
        b"Subject: Raw one\r\n\r\nDelivered as bytes.\r\n"
    )
    message_id = sandbox_admin.deliver(
        ALICE, raw=base64.urlsafe_b64encode(raw).decode().rstrip("=")
    ).message_ids[0]

    message = (
        gmail.users().messages().get(userId="me", id=message_id, format="raw").execute()
    )
    listed = _ids(gmail, q="from:erin@example.net")

    assert base64.urlsafe_b64decode(message["raw"]) == raw
    parsed = email.message_from_bytes(
        base64.urlsafe_b64decode(message["raw"]), policy=email.policy.default
    )
    assert parsed["Subject"] == "Raw one"
    assert message["snippet"] == "Delivered as bytes."
    assert listed == {message_id}


def test_get_unknown_message_is_404(gmail: Any) -> None:
    with pytest.raises(HttpError) as caught:
        gmail.users().messages().get(userId="me", id="18c0ffee00000000").execute()

    assert _status(caught.value) == 404


def test_message_deleted_after_listing_is_404(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    message_id = sandbox_admin.deliver(ALICE).message_ids[0]
    listed = _ids(gmail)

    sandbox_admin.delete_message(ALICE, message_id)

    assert listed == {message_id}
    with pytest.raises(HttpError) as caught:
        gmail.users().messages().get(userId="me", id=message_id).execute()
    assert _status(caught.value) == 404
    assert caught.value.error_details[0]["reason"] == "notFound"


def test_modify_changes_labels_and_records_history(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    delivery = sandbox_admin.deliver(ALICE)
    message_id = delivery.message_ids[0]

    modified = (
        gmail.users()
        .messages()
        .modify(
            userId="me",
            id=message_id,
            body={"addLabelIds": ["STARRED"], "removeLabelIds": ["UNREAD"]},
        )
        .execute()
    )
    history = (
        gmail.users()
        .history()
        .list(userId="me", startHistoryId=delivery.history_id)
        .execute()["history"]
    )

    assert modified == {
        "id": message_id,
        "threadId": message_id,
        "labelIds": ["INBOX", "STARRED"],
    }
    assert history[0]["labelsAdded"][0]["labelIds"] == ["STARRED"]
    assert history[1]["labelsRemoved"][0]["labelIds"] == ["UNREAD"]
    assert history[1]["labelsRemoved"][0]["message"]["labelIds"] == ["INBOX", "STARRED"]
    assert int(history[0]["id"]) < int(history[1]["id"])


def test_modify_with_unknown_label_is_400(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    message_id = sandbox_admin.deliver(ALICE).message_ids[0]

    with pytest.raises(HttpError) as caught:
        gmail.users().messages().modify(
            userId="me", id=message_id, body={"addLabelIds": ["Label_99"]}
        ).execute()

    assert _status(caught.value) == 400


def test_unknown_gmail_path_is_404_json(sandbox: SandboxServer, alice: str) -> None:
    response = requests.get(
        f"{sandbox.url}gmail/v1/users/me/drafts",
        headers={"X-Sandbox-User": alice},
        timeout=5,
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == 404
