"""In-memory implementations of the sync engine's interfaces, for unit tests."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from inboxsync.errors import HistoryExpired
from inboxsync.sync.lease import lease_is_free, needs_another_pass
from inboxsync.sync.models import (
    STATUS_ERROR,
    ActionState,
    GmailMessage,
    HistoryChange,
    HistoryPage,
    Mailbox,
    MessageFormat,
    MessagePage,
    QuotaState,
)


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Crash(BaseException):
    """Simulates the process dying: nothing in the engine catches it."""


class StepCounter:
    """Counts side-effecting steps and raises Crash at step `crash_at`."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.crash_at = crash_at
        self.steps = 0

    def step(self, name: str) -> None:
        self.steps += 1
        if self.crash_at is not None and self.steps == self.crash_at:
            raise Crash(name)


@dataclass
class _Record:
    history_id: int
    change: HistoryChange


@dataclass
class FakeGmail:
    """One Gmail mailbox: messages, a history log with gaps, expiry and faults."""

    history_id: int = 1000
    page_size: int = 100
    messages: dict[str, GmailMessage] = field(default_factory=dict)
    records: list[_Record] = field(default_factory=list)
    expired_before: int = 0
    faults: dict[str, list[BaseException]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    fetched_formats: list[MessageFormat] = field(default_factory=list)
    steps: StepCounter | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- test helpers -------------------------------------------------------
    def deliver(
        self,
        *,
        sender: str = "alice@example.com",
        subject: str = "hello",
        labels: Sequence[str] = ("INBOX", "UNREAD"),
        has_attachment: bool = False,
    ) -> tuple[str, int]:
        """Add a message; returns its id and the history id a notification carries."""
        with self._lock:
            message_id = f"m{next(self._ids):04d}"
            self.history_id += 3  # history ids have gaps
            self.messages[message_id] = GmailMessage(
                message_id=message_id,
                thread_id=message_id,
                label_ids=frozenset(labels),
                headers={"from": sender, "subject": subject, "to": "me@example.com"},
                has_attachment=has_attachment,
            )
            self.records.append(
                _Record(self.history_id, HistoryChange(message_id, "added"))
            )
            return message_id, self.history_id

    def relabel(self, message_id: str, label: str) -> int:
        with self._lock:
            self.history_id += 2
            message = self.messages[message_id]
            self.messages[message_id] = replace(
                message, label_ids=message.label_ids | {label}
            )
            self.records.append(
                _Record(
                    self.history_id,
                    HistoryChange(message_id, "labels", frozenset({label})),
                )
            )
            return self.history_id

    def delete(self, message_id: str) -> None:
        with self._lock:
            del self.messages[message_id]

    def fail(self, method: str, *errors: BaseException) -> None:
        self.faults.setdefault(method, []).extend(errors)

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        pending = self.faults.get(method)
        if pending:
            raise pending.pop(0)
        if self.steps is not None:
            self.steps.step(method)

    # --- MailboxGmail ---------------------------------------------------------
    def get_profile_history_id(self) -> int:
        self._enter("getProfile")
        return self.history_id

    def list_history(
        self, start_history_id: int, page_token: str | None
    ) -> HistoryPage:
        self._enter("history.list")
        with self._lock:
            if start_history_id < self.expired_before:
                raise HistoryExpired(f"history before {self.expired_before} is gone")
            after = [r for r in self.records if r.history_id > start_history_id]
            offset = int(page_token or 0)
            page = after[offset : offset + self.page_size]
            more = offset + self.page_size < len(after)
            return HistoryPage(
                changes=tuple(r.change for r in page),
                last_record_id=page[-1].history_id if page else None,
                response_history_id=self.history_id,
                next_page_token=str(offset + self.page_size) if more else None,
            )

    def list_messages(
        self, query: str, page_token: str | None, page_size: int
    ) -> MessagePage:
        self._enter("messages.list")
        with self._lock:
            ids = sorted(self.messages, reverse=True)
            offset = int(page_token or 0)
            chosen = ids[offset : offset + page_size]
            more = offset + page_size < len(ids)
            return MessagePage(tuple(chosen), str(offset + page_size) if more else None)

    def get_messages(
        self, message_ids: Sequence[str], fmt: MessageFormat
    ) -> Mapping[str, GmailMessage | None]:
        assert len(message_ids) <= 50
        self._enter("messages.get")
        self.calls["messages.get.items"] += len(message_ids) - 1
        self.fetched_formats.append(fmt)
        with self._lock:
            return {mid: self.messages.get(mid) for mid in message_ids}

    def add_labels(self, message_id: str, label_ids: Sequence[str]) -> None:
        self._enter("messages.modify")
        with self._lock:
            message = self.messages[message_id]
            self.messages[message_id] = replace(
                message, label_ids=message.label_ids | set(label_ids)
            )


class FakeConnector:
    def __init__(self, gmail: FakeGmail) -> None:
        self.gmail = gmail

    def for_mailbox(self, mailbox: Mailbox) -> FakeGmail:
        return self.gmail


class MemoryStore:
    """MailboxStore + MessageLedger + ActionLedger + DeadLetterStore in memory."""

    def __init__(self, steps: StepCounter | None = None) -> None:
        self.mailboxes: dict[str, Mailbox] = {}
        self.processed: dict[str, str] = {}
        self.actions: dict[str, dict[str, Any]] = {}
        self.dead_letters: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes = Counter[str]()
        self.skipped = 0
        self.steps = steps
        self._lock = threading.RLock()

    def _write(self, name: str) -> None:
        self.writes[name] += 1
        if self.steps is not None:
            self.steps.step(name)

    def add_mailbox(self, mailbox: Mailbox) -> None:
        self.mailboxes[mailbox.mailbox_id] = mailbox

    # MailboxStore
    def get_mailbox(self, mailbox_id: str) -> Mailbox | None:
        return self.mailboxes.get(mailbox_id)

    def acquire_lease(
        self,
        mailbox_id: str,
        owner: str,
        wanted_history_id: int,
        *,
        now: datetime,
        lease_s: float,
    ) -> Mailbox | None:
        with self._lock:
            mailbox = self.mailboxes[mailbox_id]
            if lease_is_free(mailbox, owner, now):
                self._write("acquire")
                mailbox = replace(
                    mailbox,
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    pending_history_id=max(
                        mailbox.pending_history_id, wanted_history_id
                    ),
                )
                self.mailboxes[mailbox_id] = mailbox
                return mailbox
            self._write("pending")
            self.mailboxes[mailbox_id] = replace(
                mailbox,
                pending_history_id=max(mailbox.pending_history_id, wanted_history_id),
            )
            return None

    def advance_checkpoint(
        self,
        mailbox_id: str,
        history_id: int,
        *,
        quota: QuotaState,
        now: datetime,
        lease_s: float,
    ) -> None:
        with self._lock:
            self._write("checkpoint")
            mailbox = self.mailboxes[mailbox_id]
            self.mailboxes[mailbox_id] = replace(
                mailbox,
                checkpoint=max(mailbox.checkpoint or 0, history_id),
                quota=quota,
                lease_expires_at=now + timedelta(seconds=lease_s),
            )

    def renew_lease(
        self, mailbox_id: str, owner: str, *, now: datetime, lease_s: float
    ) -> bool:
        with self._lock:
            mailbox = self.mailboxes[mailbox_id]
            if mailbox.lease_owner != owner:
                return False
            self._write("renew")
            self.mailboxes[mailbox_id] = replace(
                mailbox, lease_expires_at=now + timedelta(seconds=lease_s)
            )
            return True

    def release_lease(
        self,
        mailbox_id: str,
        owner: str,
        *,
        quota: QuotaState,
        now: datetime,
        lease_s: float,
        force: bool = False,
    ) -> Mailbox | None:
        with self._lock:
            mailbox = self.mailboxes[mailbox_id]
            if mailbox.lease_owner != owner:
                return None
            self._write("release")
            if not force and needs_another_pass(mailbox):
                mailbox = replace(
                    mailbox,
                    quota=quota,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                )
                self.mailboxes[mailbox_id] = mailbox
                return mailbox
            self.mailboxes[mailbox_id] = replace(
                mailbox, quota=quota, lease_owner=None, lease_expires_at=None
            )
            return None

    def mark_error(self, mailbox_id: str, error: str, *, now: datetime) -> None:
        self._write("mark_error")
        self.mailboxes[mailbox_id] = replace(
            self.mailboxes[mailbox_id], status=STATUS_ERROR
        )
        self.last_error = error

    def note_skipped(self, mailbox_id: str, *, now: datetime) -> None:
        self.skipped += 1

    # MessageLedger
    def claim_message(
        self, mailbox_id: str, message_id: str, *, expires_at: datetime
    ) -> bool:
        with self._lock:
            key = f"{mailbox_id}/{message_id}"
            state = self.processed.get(key)
            if state is None:
                self._write("claim")
                self.processed[key] = "claimed"
                return True
            return state == "claimed"

    def finish_message(self, mailbox_id: str, message_id: str, outcome: str) -> None:
        with self._lock:
            self._write("finish_message")
            self.processed[f"{mailbox_id}/{message_id}"] = outcome

    # ActionLedger
    def begin_action(
        self, record_id: str, fields: Mapping[str, Any], *, expires_at: datetime
    ) -> str:
        with self._lock:
            record = self.actions.get(record_id)
            if record is None:
                self._write("begin_action")
                self.actions[record_id] = {**fields, "state": "started", "attempts": 1}
                return ActionState.NEW
            if record["state"] == "started":
                self._write("begin_action")
                record["attempts"] += 1
                return ActionState.RETRY
            return ActionState.DONE if record["state"] == "done" else ActionState.FAILED

    def finish_action(self, record_id: str, result: Mapping[str, Any]) -> None:
        with self._lock:
            self._write("finish_action")
            self.actions[record_id].update(state="done", result=dict(result))

    def fail_action(self, record_id: str, error: str) -> None:
        with self._lock:
            self._write("fail_action")
            self.actions[record_id].update(state="failed", error=error)

    # DeadLetterStore
    def put_dead_letter(
        self, kind: str, key: str, payload: Mapping[str, Any], error: str
    ) -> str:
        with self._lock:
            self.dead_letters[(kind, key)] = {"payload": dict(payload), "error": error}
            return f"{kind}:{key}"

    def mark_push_event_dispatched(self, event_id: str) -> None:
        self.dispatched = getattr(self, "dispatched", set()) | {event_id}


@dataclass
class SinkAction:
    """A custom action that records every call; its perform can be made to fail."""

    name: str = "sink"
    message_format: MessageFormat = MessageFormat.MINIMAL
    performed: list[str] = field(default_factory=list)
    faults: list[BaseException] = field(default_factory=list)
    steps: StepCounter | None = None

    def perform(self, call: Any) -> Mapping[str, Any]:
        if self.faults:
            raise self.faults.pop(0)
        self.performed.append(call.record_id)
        if self.steps is not None:
            self.steps.step("perform")
        return {"ok": True}
