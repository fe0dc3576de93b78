"""The sync worker's request handling: auth, parsing, attempts, status mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from inboxsync.errors import (
    AuthError,
    CredentialsRevoked,
    ForbiddenError,
    GmailUnavailable,
)
from inboxsync.sync.worker import SyncRequest, SyncWorker

from .fakes import FakeGmail, MemoryStore, SinkAction
from .helpers import MAILBOX, add_mailbox, make_engine


class FakeVerifier:
    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        if authorization == "Bearer good":
            return {"email": "tasks@example.iam.gserviceaccount.com"}
        if authorization == "Bearer stranger":
            raise ForbiddenError("not allowed")
        raise AuthError("no token")


def make_worker(
    gmail: FakeGmail, store: MemoryStore, max_attempts: int = 3
) -> SyncWorker:
    engine = make_engine(gmail, store, {"sink": SinkAction()})
    return SyncWorker(
        verifier=FakeVerifier(),
        engine=engine,
        events=store,
        dead_letters=store,
        max_attempts=max_attempts,
    )


def request(body: object, retry: int = 0, token: str = "good") -> SyncRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return SyncRequest(
        {
            "authorization": f"Bearer {token}",
            "X-Cloudtasks-Taskname": "task-1",
            "X-CloudTasks-TaskRetryCount": str(retry),
        },
        raw,
    )


def body(history_id: int) -> dict[str, object]:
    return {"event_id": "e1", "mailbox_id": MAILBOX, "history_id": history_id}


def test_valid_task_syncs_and_marks_the_push_event_dispatched() -> None:
    gmail, store = FakeGmail(), MemoryStore()
    add_mailbox(store)
    _, history_id = gmail.deliver()

    outcome = make_worker(gmail, store).handle(request(body(history_id)))

    assert (outcome.status, outcome.outcome) == (204, "synced")
    assert store.dispatched == {"e1"}


def test_missing_or_foreign_token_is_refused() -> None:
    gmail, store = FakeGmail(), MemoryStore()
    worker = make_worker(gmail, store)

    assert worker.handle(request(body(1), token="none")).status == 401
    assert worker.handle(request(body(1), token="stranger")).status == 403


def test_invalid_body_is_dead_lettered_and_acknowledged() -> None:
    gmail, store = FakeGmail(), MemoryStore()
    worker = make_worker(gmail, store)

    outcomes = [
        worker.handle(request(b"not json")),
        worker.handle(request({"mailbox_id": "raw@address.example"})),
        worker.handle(request({"mailbox_id": MAILBOX, "history_id": -4})),
    ]

    assert [o.status for o in outcomes] == [204, 204, 204]
    assert ("sync_task", "task-1") in store.dead_letters


def test_transient_error_answers_503_until_the_last_attempt() -> None:
    gmail, store = FakeGmail(), MemoryStore()
    add_mailbox(store)
    _, history_id = gmail.deliver()
    gmail.fail("history.list", *(GmailUnavailable("500") for _ in range(3)))
    worker = make_worker(gmail, store, max_attempts=3)

    first = worker.handle(request(body(history_id), retry=0))
    second = worker.handle(request(body(history_id), retry=1))
    last = worker.handle(request(body(history_id), retry=2))

    assert (first.status, first.retry_after_s) == (503, 10.0)
    assert second.status == 503
    assert (last.status, last.outcome) == (204, "gave_up")
    assert (
        store.dead_letters[("sync_task", "task-1")]["payload"]["history_id"]
        == history_id
    )


def test_permanent_error_is_dead_lettered_and_acknowledged() -> None:
    gmail, store = FakeGmail(), MemoryStore()
    add_mailbox(store)
    _, history_id = gmail.deliver()
    gmail.fail("history.list", CredentialsRevoked("invalid_grant"))

    outcome = make_worker(gmail, store).handle(request(body(history_id)))

    assert (outcome.status, outcome.outcome) == (204, "permanent_error")
    assert ("sync_task", "task-1") in store.dead_letters
    assert store.mailboxes[MAILBOX].status == "error"


def test_one_info_line_per_task_without_addresses(caplog) -> None:  # type: ignore[no-untyped-def]
    gmail, store = FakeGmail(), MemoryStore()
    add_mailbox(store)
    _, history_id = gmail.deliver()
    caplog.set_level("INFO", logger="inboxsync")

    make_worker(gmail, store).handle(request(body(history_id)))

    lines = [r for r in caplog.records if r.name == "inboxsync.run_sync"]
    assert len(lines) == 1
    assert lines[0].outcome == "synced"  # type: ignore[attr-defined]
    assert lines[0].messages_new == 1  # type: ignore[attr-defined]
    assert lines[0].elapsed_ms >= 0  # type: ignore[attr-defined]
    assert "@" not in caplog.text
