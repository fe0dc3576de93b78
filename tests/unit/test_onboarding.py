from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from inboxsync import ids
from inboxsync.errors import CredentialsRevoked, GmailUnavailable
from inboxsync.onboarding import add_mailbox, renew_watches
from inboxsync.sync.models import STATUS_ACTIVE, STATUS_DISABLED, Mailbox

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TOPIC = "projects/p/topics/gmail"


class FakeDirectory:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}

    def upsert_mailbox(self, mailbox_id: str, fields: Mapping[str, Any]) -> None:
        self.docs.setdefault(mailbox_id, {}).update(fields)

    def list_mailboxes(self) -> list[Mailbox]:
        return [
            Mailbox(key, doc["address"], status=doc.get("status", STATUS_ACTIVE))
            for key, doc in self.docs.items()
        ]

    def mark_error(self, mailbox_id: str, error: str, *, now: datetime) -> None:
        self.errors[mailbox_id] = error


class FakeGmail:
    def __init__(self, log: list[str], address: str, failure: Exception | None) -> None:
        self._log = log
        self._address = address
        self._failure = failure

    def get_profile_history_id(self) -> int:
        self._log.append(f"profile {self._address}")
        return 500

    def watch(self, topic: str, label_ids: Sequence[str]) -> tuple[int, int]:
        self._log.append(f"watch {self._address} {topic} {list(label_ids)}")
        if self._failure is not None:
            raise self._failure
        return 501, int(NOW.timestamp() * 1000) + 7 * 86_400_000


class FakeConnector:
    def __init__(self, failures: dict[str, Exception] | None = None) -> None:
        self.log: list[str] = []
        self.failures = failures or {}

    def for_mailbox(self, mailbox: Mailbox) -> FakeGmail:
        return FakeGmail(self.log, mailbox.address, self.failures.get(mailbox.address))


class FakeQueue:
    def __init__(self) -> None:
        self.tasks: dict[str, Mapping[str, Any]] = {}

    def enqueue(self, task_name: str, body: Mapping[str, Any]) -> bool:
        created = task_name not in self.tasks
        self.tasks.setdefault(task_name, body)
        return created


def test_add_registers_at_the_profile_history_id_before_watching() -> None:
    directory, connector = FakeDirectory(), FakeConnector()

    watched = add_mailbox(directory, connector, "Ann@Example.com", topic=TOPIC, now=NOW)

    doc = directory.docs[ids.mailbox_id("ann@example.com")]
    assert doc["checkpointHistoryId"] == 500
    assert doc["address"] == "ann@example.com"
    assert doc["watchExpiresAt"] == watched.watch_expires_at
    assert (watched.watch_expires_at - NOW).days == 7
    assert connector.log == [
        "profile ann@example.com",
        f"watch ann@example.com {TOPIC} ['INBOX']",
    ]


def test_renew_watches_active_mailboxes_and_queues_one_catch_up_each() -> None:
    directory, queue = FakeDirectory(), FakeQueue()
    for address in ("a@x.io", "b@x.io"):
        add_mailbox(directory, FakeConnector(), address, topic=TOPIC, now=NOW)
    directory.docs[ids.mailbox_id("b@x.io")]["status"] = STATUS_DISABLED

    first = renew_watches(directory, FakeConnector(), queue, topic=TOPIC, now=NOW)
    again = renew_watches(directory, FakeConnector(), queue, topic=TOPIC, now=NOW)

    assert first.renewed == [ids.mailbox_id("a@x.io")]
    assert first.skipped == [ids.mailbox_id("b@x.io")]
    assert again.renewed == first.renewed
    (body,) = queue.tasks.values()  # the same catch-up name both times
    assert body["mailbox_id"] == ids.mailbox_id("a@x.io")
    assert body["history_id"] == 501


def test_renew_marks_revoked_mailboxes_and_keeps_going() -> None:
    directory, queue = FakeDirectory(), FakeQueue()
    for address in ("gone@x.io", "busy@x.io", "fine@x.io"):
        add_mailbox(directory, FakeConnector(), address, topic=TOPIC, now=NOW)
    connector = FakeConnector(
        {
            "gone@x.io": CredentialsRevoked("refresh token revoked"),
            "busy@x.io": GmailUnavailable("503"),
        }
    )

    report = renew_watches(directory, connector, queue, topic=TOPIC, now=NOW)

    assert report.renewed == [ids.mailbox_id("fine@x.io")]
    assert set(report.failed) == {ids.mailbox_id("gone@x.io")}
    assert set(report.retry_later) == {ids.mailbox_id("busy@x.io")}
    assert "revoked" in directory.errors[ids.mailbox_id("gone@x.io")]
    assert ids.mailbox_id("busy@x.io") not in directory.errors
    assert len(queue.tasks) == 1
