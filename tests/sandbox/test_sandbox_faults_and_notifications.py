"""Injected faults, and the push notifications a watched mailbox sends."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from gmail_sandbox_helpers import ALICE, BOB, TOPIC, gmail_service
from googleapiclient.errors import HttpError

from inboxsync.local.sandbox import (
    FakeClock,
    RecordingPublisher,
    SandboxAdmin,
    SandboxAdminError,
    SandboxServer,
)

DAY_S = 86_400


def _history_ids(publisher: RecordingPublisher) -> list[int]:
    return [json.loads(data)["historyId"] for _, data in publisher.published]


# ------------------------------------------------------------------- faults


def test_fault_429_then_success(gmail: Any, sandbox_admin: SandboxAdmin) -> None:
    start = sandbox_admin.get_mailbox(ALICE)["history_id"]
    sandbox_admin.inject_fault("history.list", status=429)

    with pytest.raises(HttpError) as caught:
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    retried = gmail.users().history().list(userId="me", startHistoryId=start).execute()

    assert caught.value.resp.status == 429
    assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"
    assert retried == {"historyId": start}
    assert sandbox_admin.stats()["faults_applied"] == 1
    assert sandbox_admin.list_faults() == []


@pytest.mark.parametrize("status", [403, 404, 500, 503])
def test_fault_statuses(gmail: Any, sandbox_admin: SandboxAdmin, status: int) -> None:
    sandbox_admin.inject_fault("getProfile", status=status)

    with pytest.raises(HttpError) as caught:
        gmail.users().getProfile(userId="me").execute()

    assert caught.value.resp.status == status


def test_fault_count_and_custom_reason(gmail: Any, sandbox_admin: SandboxAdmin) -> None:
    sandbox_admin.inject_fault(
        "getProfile", status=403, count=2, reason="userRateLimitExceeded"
    )

    reasons = []
    for _ in range(2):
        with pytest.raises(HttpError) as caught:
            gmail.users().getProfile(userId="me").execute()
        reasons.append(caught.value.error_details[0]["reason"])
    profile = gmail.users().getProfile(userId="me").execute()

    assert reasons == ["userRateLimitExceeded"] * 2
    assert profile["emailAddress"] == ALICE


def test_fault_limited_to_one_user(
    gmail: Any, sandbox: SandboxServer, sandbox_admin: SandboxAdmin
) -> None:
    sandbox_admin.create_mailbox(BOB)
    bob = gmail_service(sandbox, BOB)
    sandbox_admin.inject_fault("getProfile", status=500, user=BOB)

    alice_profile = gmail.users().getProfile(userId="me").execute()
    with pytest.raises(HttpError) as caught:
        bob.users().getProfile(userId="me").execute()

    assert alice_profile["emailAddress"] == ALICE
    assert caught.value.resp.status == 500
    bob.close()


def test_latency_fault_delays_the_answer(
    gmail: Any, sandbox_admin: SandboxAdmin
) -> None:
    sandbox_admin.inject_fault("labels.list", latency_ms=120)

    started = time.monotonic()
    labels = gmail.users().labels().list(userId="me").execute()
    elapsed_s = time.monotonic() - started

    assert labels["labels"]
    assert elapsed_s >= 0.12


def test_clear_faults(gmail: Any, sandbox_admin: SandboxAdmin) -> None:
    sandbox_admin.inject_fault("getProfile", status=503, count=5)

    cleared = sandbox_admin.clear_faults()
    profile = gmail.users().getProfile(userId="me").execute()

    assert cleared == 1
    assert profile["emailAddress"] == ALICE


@pytest.mark.parametrize(
    "spec",
    [
        {"method": "drafts.list", "status": 500},
        {"method": "getProfile", "status": 418},
        {"method": "getProfile"},
        {"method": "getProfile", "status": 500, "count": 0},
    ],
)
def test_bad_fault_specs_are_400(
    sandbox_admin: SandboxAdmin, spec: dict[str, Any]
) -> None:
    with pytest.raises(SandboxAdminError) as caught:
        sandbox_admin.inject_fault(**spec)

    assert caught.value.status == 400


def test_stats_count_calls_per_method(gmail: Any, sandbox_admin: SandboxAdmin) -> None:
    gmail.users().getProfile(userId="me").execute()
    gmail.users().getProfile(userId="me").execute()
    gmail.users().labels().list(userId="me").execute()

    calls = sandbox_admin.stats()["calls"]

    assert calls == {"getProfile": 2, "labels.list": 1}


# ------------------------------------------------------------ notifications


def test_two_changes_within_a_second_publish_once(
    gmail: Any,
    sandbox_admin: SandboxAdmin,
    fake_clock: FakeClock,
    recording_publisher: RecordingPublisher,
) -> None:
    gmail.users().watch(userId="me", body={"topicName": TOPIC}).execute()
    fake_clock.advance(10)

    first = sandbox_admin.deliver(ALICE)
    fake_clock.advance(0.5)
    sandbox_admin.deliver(ALICE)
    fake_clock.advance(0.5)
    third = sandbox_admin.deliver(ALICE)

    assert _history_ids(recording_publisher)[1:] == [
        int(first.history_id),
        int(third.history_id),
    ]
    assert sandbox_admin.stats()["notifications"]["dropped_rate_limited"] == 1
    assert sandbox_admin.stats()["notifications"]["published"] == 3


def test_notification_payload_and_admin_log(
    gmail: Any, sandbox_admin: SandboxAdmin, recording_publisher: RecordingPublisher
) -> None:
    answer = gmail.users().watch(userId="me", body={"topicName": TOPIC}).execute()

    logged = sandbox_admin.notifications()

    topic, data = recording_publisher.published[0]
    assert json.loads(data) == {
        "emailAddress": ALICE,
        "historyId": int(answer["historyId"]),
    }
    assert logged[0]["topic"] == topic
    assert logged[0]["history_id"] == answer["historyId"]
    assert logged[0]["message_id"] == "1"


def test_modify_and_delete_notify(
    gmail: Any,
    sandbox_admin: SandboxAdmin,
    fake_clock: FakeClock,
    recording_publisher: RecordingPublisher,
) -> None:
    message_id = sandbox_admin.deliver(ALICE).message_ids[0]
    gmail.users().watch(userId="me", body={"topicName": TOPIC}).execute()
    fake_clock.advance(2)

    gmail.users().messages().modify(
        userId="me", id=message_id, body={"addLabelIds": ["STARRED"]}
    ).execute()
    fake_clock.advance(2)
    deleted_at = sandbox_admin.delete_message(ALICE, message_id)

    assert len(recording_publisher.published) == 3
    assert _history_ids(recording_publisher)[-1] == int(deleted_at)


def test_watch_expires_after_seven_days(
    gmail: Any,
    sandbox_admin: SandboxAdmin,
    fake_clock: FakeClock,
    recording_publisher: RecordingPublisher,
) -> None:
    gmail.users().watch(userId="me", body={"topicName": TOPIC}).execute()
    fake_clock.advance(7 * DAY_S - 1)
    sandbox_admin.deliver(ALICE)
    fake_clock.advance(2)

    sandbox_admin.deliver(ALICE)

    assert len(recording_publisher.published) == 2
    assert sandbox_admin.get_mailbox(ALICE)["watch"]["active"] is False


def test_renewing_the_watch_extends_it(
    gmail: Any,
    sandbox_admin: SandboxAdmin,
    fake_clock: FakeClock,
    recording_publisher: RecordingPublisher,
) -> None:
    gmail.users().watch(userId="me", body={"topicName": TOPIC}).execute()
    fake_clock.advance(DAY_S)
    renewed = gmail.users().watch(userId="me", body={"topicName": TOPIC}).execute()
    fake_clock.advance(6.5 * DAY_S)

    sandbox_admin.deliver(ALICE)

    assert int(renewed["expiration"]) == int(fake_clock() * 1000) + DAY_S * 1000 // 2
    assert len(recording_publisher.published) == 3


def test_label_filter_is_honoured_loosely(
    gmail: Any,
    sandbox_admin: SandboxAdmin,
    fake_clock: FakeClock,
    recording_publisher: RecordingPublisher,
) -> None:
    body = {"topicName": TOPIC, "labelIds": ["INBOX"], "labelFilterBehavior": "include"}
    gmail.users().watch(userId="me", body=body).execute()
    fake_clock.advance(2)

    sent = sandbox_admin.deliver(ALICE, labels=["SENT"]).message_ids[0]
    fake_clock.advance(2)
    gmail.users().messages().modify(
        userId="me", id=sent, body={"addLabelIds": ["STARRED"]}
    ).execute()
    fake_clock.advance(2)
    inbox = sandbox_admin.deliver(ALICE, labels=["INBOX"])

    # New mail outside the filter is skipped, but the label change on that same
    # message still notifies: the product must re-check labels itself.
    assert len(recording_publisher.published) == 3
    assert _history_ids(recording_publisher)[-1] == int(inbox.history_id)
    assert sandbox_admin.stats()["notifications"]["suppressed_by_filter"] == 1


def test_publish_failures_are_counted_not_raised(
    gmail: Any,
    sandbox_admin: SandboxAdmin,
    recording_publisher: RecordingPublisher,
) -> None:
    recording_publisher.fail = True

    answer = gmail.users().watch(userId="me", body={"topicName": TOPIC}).execute()

    assert answer["historyId"]
    assert sandbox_admin.stats()["notifications"]["publish_failed"] == 1
    assert "error" in sandbox_admin.notifications()[0]


def test_no_watch_no_notifications(
    sandbox_admin: SandboxAdmin, alice: str, recording_publisher: RecordingPublisher
) -> None:
    sandbox_admin.deliver(alice, count=3)

    assert recording_publisher.published == []
    assert sandbox_admin.stats()["notifications"]["dropped_rate_limited"] == 0
