"""Mailboxes, messages, history, labels, watches and faults of the Gmail sandbox.

Pure and thread-safe: no I/O happens here. Every public method takes one lock,
reads the time from the injected clock, and returns JSON-ready dictionaries in
the shapes of the Gmail v1 API. Notifications that a change should send are
queued in an outbox that the server drains and publishes after the request.

Gmail behaviours reproduced on purpose, because the product must cope with them:
- history ids strictly increase with random gaps (seeded, so runs repeat);
- history older than the retention window, or explicitly expired, answers 404;
- at most one notification per second per mailbox, extras are dropped;
- watch label filters are honoured loosely: only new messages are filtered,
  label changes and deletions notify whatever the filter says;
- a message deleted after it was listed answers 404 on get.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import mime
from .query import MessageView, QueryError, compile_query

__all__ = [
    "FAULTABLE_METHODS",
    "HISTORY_TYPES",
    "SYSTEM_LABELS",
    "Clock",
    "FakeClock",
    "Fault",
    "Notification",
    "SandboxError",
    "SandboxState",
]

Clock = Callable[[], float]
"""Seconds since the epoch, like `time.time`."""

SYSTEM_LABELS = ("INBOX", "UNREAD", "SENT", "SPAM", "TRASH", "IMPORTANT", "STARRED")
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
FAULTABLE_METHODS = (
    "getProfile",
    "watch",
    "stop",
    "labels.list",
    "history.list",
    "messages.list",
    "messages.get",
    "messages.modify",
    "messages.attachments.get",
    "batch",
)
FAULT_STATUSES = (400, 401, 403, 404, 429, 500, 503)

_SNAPSHOT_FORMAT = "inboxsync-sandbox-state/1"
_DEFAULT_LABELS = ("INBOX", "UNREAD")
_WATCH_LIFETIME_MS = 7 * 86_400 * 1000
_DEFAULT_RETENTION_S = 7 * 86_400.0
_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
_MAX_DELIVERY_COUNT = 1000
_PAGE_DEFAULT = 100
_PAGE_MAX = 500
_TOPIC = re.compile(r"^projects/[^/\s]+/topics/[^/\s]+$")
_ADDRESS = re.compile(r"^[^@\s/]+@[^@\s/]+$")
_ERROR_STATUS = {
    400: ("INVALID_ARGUMENT", "invalidArgument"),
    401: ("UNAUTHENTICATED", "authError"),
    403: ("PERMISSION_DENIED", "forbidden"),
    404: ("NOT_FOUND", "notFound"),
    405: ("NOT_FOUND", "notFound"),
    409: ("ALREADY_EXISTS", "conflict"),
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    500: ("INTERNAL", "backendError"),
    503: ("UNAVAILABLE", "backendError"),
}


class SandboxError(Exception):
    """An API error with its HTTP status; `body()` is Gmail's error envelope."""

    def __init__(self, status: int, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        grpc_status, default_reason = _ERROR_STATUS.get(status, ("UNKNOWN", "unknown"))
        self.reason = reason or default_reason
        self.grpc_status = grpc_status

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [
                    {"message": self.message, "domain": "global", "reason": self.reason}
                ],
                "status": self.grpc_status,
            }
        }


class FakeClock:
    """A clock that only moves when told to; callable like `time.time`."""

    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self._now_s = start_s
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now_s

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now_s += seconds


@dataclass(frozen=True)
class Notification:
    """One Gmail push notification waiting to be published."""

    topic: str
    email_address: str
    history_id: int

    def data(self) -> bytes:
        # Real notifications carry historyId as a JSON number although the docs
        # show a string; consumers must accept both.
        payload = {"emailAddress": self.email_address, "historyId": self.history_id}
        return json.dumps(payload, separators=(",", ":")).encode("utf-8")


@dataclass
class Fault:
    """Make the next `remaining` calls of `method` slow and/or fail."""

    id: int
    method: str
    status: int | None
    latency_ms: int
    remaining: int
    user: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "remaining": self.remaining,
            "user": self.user,
            "reason": self.reason,
        }

    def error(self) -> SandboxError | None:
        if self.status is None:
            return None
        return SandboxError(
            self.status,
            f"Injected fault: {self.method} answered {self.status}",
            reason=self.reason,
        )


@dataclass
class _Label:
    id: str
    name: str
    type: str

    def to_json(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.type == "user":
            rendered["messageListVisibility"] = "show"
            rendered["labelListVisibility"] = "labelShow"
        return rendered


@dataclass
class _Message:
    id: str
    thread_id: str
    raw: bytes
    label_ids: list[str]
    internal_date_ms: int
    history_id: int
    seq: int
    summary: mime.MessageSummary

    def sort_key(self) -> tuple[int, int]:
        # Newest first: larger internal date first, later delivery breaks ties.
        return (-self.internal_date_ms, -self.seq)

    def reference(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"id": self.id, "threadId": self.thread_id}
        if self.label_ids:
            rendered["labelIds"] = list(self.label_ids)
        return rendered


@dataclass
class _Record:
    id: int
    kind: str
    message_id: str
    thread_id: str
    message_label_ids: list[str]
    changed_label_ids: list[str]
    at_ms: int

    def to_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {"id": self.message_id, "threadId": self.thread_id}
        if self.message_label_ids:
            message["labelIds"] = list(self.message_label_ids)
        rendered: dict[str, Any] = {
            "id": str(self.id),
            "messages": [{"id": self.message_id, "threadId": self.thread_id}],
        }
        if self.kind == "messageAdded":
            rendered["messagesAdded"] = [{"message": message}]
        elif self.kind == "messageDeleted":
            rendered["messagesDeleted"] = [{"message": message}]
        elif self.kind == "labelAdded":
            rendered["labelsAdded"] = [
                {"message": message, "labelIds": list(self.changed_label_ids)}
            ]
        else:
            rendered["labelsRemoved"] = [
                {"message": message, "labelIds": list(self.changed_label_ids)}
            ]
        return rendered


@dataclass
class _Watch:
    topic: str
    label_ids: list[str]
    behavior: str
    expiration_ms: int


@dataclass
class _Mailbox:
    address: str
    history_id: int
    history_floor: int
    labels: dict[str, _Label] = field(default_factory=dict)
    next_label_number: int = 1
    messages: dict[str, _Message] = field(default_factory=dict)
    history: list[_Record] = field(default_factory=list)
    watch: _Watch | None = None
    last_notified_ms: int | None = None


def _system_labels() -> dict[str, _Label]:
    return {name: _Label(name, name, "system") for name in SYSTEM_LABELS}


def _encode_token(*parts: int) -> str:
    text = ":".join(str(part) for part in parts)
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def _decode_token(token: str, length: int) -> list[int]:
    try:
        decoded = mime.b64url_decode(token).decode("ascii")
        values = [int(part) for part in decoded.split(":")]
    except (ValueError, UnicodeDecodeError) as exc:
        raise SandboxError(400, "Invalid pageToken") from exc
    if len(values) != length:
        raise SandboxError(400, "Invalid pageToken")
    return values


def _page_size(value: str | None) -> int:
    if value is None or value == "":
        return _PAGE_DEFAULT
    try:
        size = int(value)
    except ValueError as exc:
        raise SandboxError(400, f"Invalid maxResults: {value!r}") from exc
    if size < 1:
        raise SandboxError(400, "maxResults must be at least 1")
    return min(size, _PAGE_MAX)


class SandboxState:
    """Everything the sandbox knows; one lock guards all of it."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        seed: int = 0,
        history_retention_s: float = _DEFAULT_RETENTION_S,
        notification_interval_s: float = 1.0,
    ) -> None:
        self._clock = clock
        self._seed = seed
        self._retention_ms = int(history_retention_s * 1000)
        self._interval_ms = int(notification_interval_s * 1000)
        self._lock = threading.RLock()
        self._revision = 0
        self._clear()

    def _clear(self) -> None:
        self._clock_offset_s = 0.0
        self._message_seq = 0
        self._mailboxes: dict[str, _Mailbox] = {}
        self._faults: list[Fault] = []
        self._next_fault_id = 1
        self._outbox: list[Notification] = []
        self._calls: dict[str, int] = {}
        self._faults_applied = 0
        self._published = 0
        self._publish_failed = 0
        self._dropped = 0
        self._filtered = 0

    # ----------------------------------------------------------------- basics

    @property
    def revision(self) -> int:
        """Bumped by every change worth persisting (not by stats or faults)."""
        with self._lock:
            return self._revision

    def now_ms(self) -> int:
        with self._lock:
            return int((self._clock() + self._clock_offset_s) * 1000)

    def _changed(self) -> None:
        self._revision += 1

    def _mailbox(self, address: str) -> _Mailbox:
        mailbox = self._mailboxes.get(address.lower())
        if mailbox is None:
            raise SandboxError(
                400,
                f"Mail service not enabled for {address}: create the mailbox "
                "through the sandbox admin API first",
                reason="failedPrecondition",
            )
        return mailbox

    def require_mailbox(self, address: str) -> None:
        """Raise Gmail's "mail service not enabled" error for an unknown address."""
        with self._lock:
            self._mailbox(address)

    def _next_history_id(self, mailbox: _Mailbox) -> int:
        # Seeded per (mailbox, current id): deterministic, and nothing to persist.
        rng = random.Random(f"{self._seed}/{mailbox.address}/{mailbox.history_id}")
        mailbox.history_id += rng.randint(1, 40)
        return mailbox.history_id

    def _new_message_id(self, address: str) -> str:
        self._message_seq += 1
        digest = hashlib.sha256(f"{self._seed}/{address}/{self._message_seq}".encode())
        # Gmail ids are 16 hex digits; a leading 1 keeps them the same length.
        return "1" + digest.hexdigest()[:15]

    def _record(
        self,
        mailbox: _Mailbox,
        kind: str,
        message: _Message,
        changed: Iterable[str] = (),
    ) -> int:
        history_id = self._next_history_id(mailbox)
        mailbox.history.append(
            _Record(
                id=history_id,
                kind=kind,
                message_id=message.id,
                thread_id=message.thread_id,
                message_label_ids=list(message.label_ids),
                changed_label_ids=list(changed),
                at_ms=self.now_ms(),
            )
        )
        message.history_id = history_id
        self._prune(mailbox)
        return history_id

    def _prune(self, mailbox: _Mailbox) -> None:
        cutoff_ms = self.now_ms() - self._retention_ms
        kept = [record for record in mailbox.history if record.at_ms >= cutoff_ms]
        if len(kept) != len(mailbox.history):
            dropped = mailbox.history[: len(mailbox.history) - len(kept)]
            mailbox.history_floor = max(mailbox.history_floor, dropped[-1].id)
            mailbox.history = kept

    # ---------------------------------------------------------- notifications

    def _notify(self, mailbox: _Mailbox, *, added_labels: list[str] | None) -> None:
        """Queue a notification for a change; `added_labels` is set for new mail."""
        watch = mailbox.watch
        now_ms = self.now_ms()
        if watch is None or now_ms >= watch.expiration_ms:
            return

        # Loose filtering: only new messages are checked against the filter.
        if added_labels is not None and watch.label_ids:
            overlaps = bool(set(added_labels) & set(watch.label_ids))
            if overlaps != (watch.behavior == "include"):
                self._filtered += 1
                return

        last = mailbox.last_notified_ms
        if last is not None and now_ms - last < self._interval_ms:
            self._dropped += 1
            return

        mailbox.last_notified_ms = now_ms
        self._outbox.append(
            Notification(watch.topic, mailbox.address, mailbox.history_id)
        )

    def drain_notifications(self) -> list[Notification]:
        """Take the queued notifications; the caller publishes them."""
        with self._lock:
            drained, self._outbox = self._outbox, []
            return drained

    def record_publish(self, *, ok: bool) -> None:
        with self._lock:
            if ok:
                self._published += 1
            else:
                self._publish_failed += 1

    # ------------------------------------------------------- faults and stats

    def count_call(self, method: str) -> None:
        with self._lock:
            self._calls[method] = self._calls.get(method, 0) + 1

    def add_fault(
        self,
        method: str,
        *,
        status: int | None = None,
        latency_ms: int = 0,
        count: int = 1,
        user: str | None = None,
        reason: str | None = None,
    ) -> Fault:
        if method not in FAULTABLE_METHODS:
            raise SandboxError(
                400,
                f"unknown method {method!r}; one of: {', '.join(FAULTABLE_METHODS)}",
            )
        if status is not None and status not in FAULT_STATUSES:
            raise SandboxError(
                400,
                f"unsupported status {status}; one of: "
                f"{', '.join(str(s) for s in FAULT_STATUSES)}",
            )
        if status is None and latency_ms <= 0:
            raise SandboxError(400, "a fault needs a status, a latency, or both")
        if latency_ms < 0 or latency_ms > 60_000:
            raise SandboxError(400, "latency_ms must be between 0 and 60000")
        if count < 1:
            raise SandboxError(400, "count must be at least 1")

        with self._lock:
            fault = Fault(
                id=self._next_fault_id,
                method=method,
                status=status,
                latency_ms=latency_ms,
                remaining=count,
                user=user.lower() if user else None,
                reason=reason,
            )
            self._next_fault_id += 1
            self._faults.append(fault)
            return fault

    def take_fault(self, method: str, user: str | None) -> Fault | None:
        """Consume one use of the oldest fault matching this call, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.method != method:
                    continue
                if fault.user is not None and fault.user != (user or "").lower():
                    continue
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                self._faults_applied += 1
                return Fault(**{**fault.__dict__, "remaining": fault.remaining})
            return None

    def list_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def clear_faults(self) -> int:
        with self._lock:
            cleared = len(self._faults)
            self._faults = []
            return cleared

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(sorted(self._calls.items())),
                "faults_applied": self._faults_applied,
                "notifications": {
                    "published": self._published,
                    "publish_failed": self._publish_failed,
                    "dropped_rate_limited": self._dropped,
                    "suppressed_by_filter": self._filtered,
                },
            }

    def reset(self) -> None:
        """Forget everything: mailboxes, faults, stats and the clock offset."""
        with self._lock:
            self._clear()
            self._changed()

    def advance_clock(self, seconds: float) -> int:
        if seconds < 0:
            raise SandboxError(400, "the clock only moves forward")
        with self._lock:
            self._clock_offset_s += seconds
            self._changed()
            return self.now_ms()

    # ------------------------------------------------------------ admin: data

    def create_mailbox(self, address: str) -> dict[str, Any]:
        if not _ADDRESS.match(address):
            raise SandboxError(400, f"not an email address: {address!r}")
        with self._lock:
            key = address.lower()
            if key in self._mailboxes:
                raise SandboxError(409, f"mailbox {address} already exists")
            start = random.Random(f"{self._seed}/{key}/start").randint(1_000, 900_000)
            mailbox = _Mailbox(
                address=key,
                history_id=start,
                history_floor=start,
                labels=_system_labels(),
            )
            self._mailboxes[key] = mailbox
            self._changed()
            return self._describe(mailbox)

    def list_mailboxes(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._describe(m) for _, m in sorted(self._mailboxes.items())]

    def describe_mailbox(self, address: str) -> dict[str, Any]:
        with self._lock:
            return self._describe(self._admin_mailbox(address))

    def _admin_mailbox(self, address: str) -> _Mailbox:
        mailbox = self._mailboxes.get(address.lower())
        if mailbox is None:
            raise SandboxError(404, f"no mailbox {address}")
        return mailbox

    def _describe(self, mailbox: _Mailbox) -> dict[str, Any]:
        watch = mailbox.watch
        now_ms = self.now_ms()
        return {
            "address": mailbox.address,
            "history_id": str(mailbox.history_id),
            "history_floor": str(mailbox.history_floor),
            "messages_total": len(mailbox.messages),
            "watch": None
            if watch is None
            else {
                "topic": watch.topic,
                "label_ids": list(watch.label_ids),
                "label_filter_behavior": watch.behavior,
                "expiration_ms": watch.expiration_ms,
                "active": now_ms < watch.expiration_ms,
            },
        }

    def _label_id_for(self, mailbox: _Mailbox, name_or_id: str, *, create: bool) -> str:
        if name_or_id in mailbox.labels:
            return name_or_id
        wanted = name_or_id.lower()
        for label in mailbox.labels.values():
            if label.name.lower() == wanted:
                return label.id
        if not create:
            raise SandboxError(400, f"Invalid label: {name_or_id}")
        label_id = f"Label_{mailbox.next_label_number}"
        mailbox.next_label_number += 1
        mailbox.labels[label_id] = _Label(label_id, name_or_id, "user")
        return label_id

    def deliver(self, address: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Add messages to a mailbox, as if they had just arrived."""
        count = spec.get("count", 1)
        if not isinstance(count, int) or not 1 <= count <= _MAX_DELIVERY_COUNT:
            raise SandboxError(400, f"count must be 1..{_MAX_DELIVERY_COUNT}")
        labels = spec.get("labels", list(_DEFAULT_LABELS))
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise SandboxError(400, "labels must be a list of label names or ids")
        raw_text = spec.get("raw")
        if raw_text is not None and not isinstance(raw_text, str):
            raise SandboxError(400, "raw must be a base64url string")
        attachments = _attachment_specs(spec.get("attachments", []))
        internal_date_ms = spec.get("internal_date_ms")
        if internal_date_ms is not None and not isinstance(internal_date_ms, int):
            raise SandboxError(400, "internal_date_ms must be an integer")
        thread_id = spec.get("thread_id")
        if thread_id is not None and not isinstance(thread_id, str):
            raise SandboxError(400, "thread_id must be a string")
        fields = {
            name: spec.get(name, default)
            for name, default in (
                ("sender", "sender@example.com"),
                ("subject", "Sandbox message"),
                ("body", "Hello from the inboxsync Gmail sandbox."),
            )
        }
        if not all(isinstance(value, str) for value in fields.values()):
            raise SandboxError(400, "sender, to, subject and body must be strings")

        raw_bytes: bytes | None = None
        if raw_text is not None:
            try:
                raw_bytes = mime.b64url_decode(raw_text)
            except ValueError as exc:
                raise SandboxError(400, f"raw: {exc}") from exc
            if not raw_bytes.strip():
                raise SandboxError(400, "raw message is empty")

        with self._lock:
            mailbox = self._admin_mailbox(address)
            label_ids = list(
                dict.fromkeys(
                    self._label_id_for(mailbox, name, create=True) for name in labels
                )
            )
            to = spec.get("to") or mailbox.address
            if not isinstance(to, str):
                raise SandboxError(400, "to must be a string")
            message_ids: list[str] = []

            for _ in range(count):
                message_id = self._new_message_id(mailbox.address)
                date_ms = (
                    internal_date_ms
                    if internal_date_ms is not None
                    else (self.now_ms())
                )
                raw = raw_bytes or mime.build_rfc822(
                    message_id=message_id,
                    sender=fields["sender"],
                    to=to,
                    subject=fields["subject"],
                    body=fields["body"],
                    attachments=attachments,
                    date_ms=date_ms,
                )
                message = _Message(
                    id=message_id,
                    thread_id=thread_id or message_id,
                    raw=raw,
                    label_ids=list(label_ids),
                    internal_date_ms=date_ms,
                    history_id=mailbox.history_id,
                    seq=self._message_seq,
                    summary=mime.summarize(raw),
                )
                mailbox.messages[message_id] = message
                self._record(mailbox, "messageAdded", message)
                self._notify(mailbox, added_labels=label_ids)
                message_ids.append(message_id)

            self._changed()
            return {
                "message_ids": message_ids,
                "history_id": str(mailbox.history_id),
                "label_ids": label_ids,
            }

    def delete_message(self, address: str, message_id: str) -> dict[str, Any]:
        """Delete a message for good (not trash), recording messageDeleted."""
        with self._lock:
            mailbox = self._admin_mailbox(address)
            message = mailbox.messages.pop(message_id, None)
            if message is None:
                raise SandboxError(404, f"no message {message_id} in {address}")
            self._record(mailbox, "messageDeleted", message)
            self._notify(mailbox, added_labels=None)
            self._changed()
            return {"history_id": str(mailbox.history_id)}

    def expire_history(self, address: str, before_id: int | None) -> dict[str, Any]:
        """Make start ids below `before_id` (default: the current id) answer 404."""
        with self._lock:
            mailbox = self._admin_mailbox(address)
            floor = mailbox.history_id if before_id is None else before_id
            if floor > mailbox.history_id:
                raise SandboxError(
                    400,
                    f"before_id {floor} is after the current history id "
                    f"{mailbox.history_id}",
                )
            mailbox.history_floor = max(mailbox.history_floor, floor)
            mailbox.history = [r for r in mailbox.history if r.id > floor]
            self._changed()
            return {
                "history_id": str(mailbox.history_id),
                "history_floor": str(mailbox.history_floor),
            }

    # ------------------------------------------------------------- Gmail API

    def get_profile(self, address: str) -> dict[str, Any]:
        with self._lock:
            mailbox = self._mailbox(address)
            threads = {m.thread_id for m in mailbox.messages.values()}
            return {
                "emailAddress": mailbox.address,
                "messagesTotal": len(mailbox.messages),
                "threadsTotal": len(threads),
                "historyId": str(mailbox.history_id),
            }

    def watch(self, address: str, body: dict[str, Any]) -> dict[str, Any]:
        topic = body.get("topicName")
        if not isinstance(topic, str) or not _TOPIC.match(topic):
            raise SandboxError(
                400, "Invalid topicName: expected projects/PROJECT/topics/TOPIC"
            )
        label_ids = body.get("labelIds") or []
        if not isinstance(label_ids, list):
            raise SandboxError(400, "labelIds must be a list")
        behavior = body.get("labelFilterBehavior") or body.get("labelFilterAction")
        behavior = (behavior or "include").lower()
        if behavior not in ("include", "exclude"):
            raise SandboxError(400, f"Invalid labelFilterBehavior: {behavior}")

        with self._lock:
            mailbox = self._mailbox(address)
            resolved = [
                self._label_id_for(mailbox, str(label), create=False)
                for label in label_ids
            ]
            expiration_ms = self.now_ms() + _WATCH_LIFETIME_MS
            mailbox.watch = _Watch(topic, resolved, behavior, expiration_ms)
            # Like Gmail, a successful watch announces the current state at once.
            self._notify(mailbox, added_labels=None)
            self._changed()
            return {
                "historyId": str(mailbox.history_id),
                "expiration": str(expiration_ms),
            }

    def stop(self, address: str) -> None:
        with self._lock:
            mailbox = self._mailbox(address)
            mailbox.watch = None
            self._changed()

    def list_labels(self, address: str) -> dict[str, Any]:
        with self._lock:
            mailbox = self._mailbox(address)
            return {"labels": [label.to_json() for label in mailbox.labels.values()]}

    def list_history(
        self,
        address: str,
        *,
        start_history_id: str | None,
        history_types: list[str],
        label_id: str | None,
        max_results: str | None,
        page_token: str | None,
    ) -> dict[str, Any]:
        if not start_history_id:
            raise SandboxError(400, "Missing required parameter startHistoryId")
        if not start_history_id.isdigit():
            raise SandboxError(400, f"Invalid startHistoryId: {start_history_id!r}")
        start = int(start_history_id)
        unknown = [kind for kind in history_types if kind not in HISTORY_TYPES]
        if unknown:
            raise SandboxError(400, f"Invalid historyTypes: {', '.join(unknown)}")
        size = _page_size(max_results)
        after = _decode_token(page_token, 1)[0] if page_token else start

        with self._lock:
            mailbox = self._mailbox(address)
            self._prune(mailbox)
            if start < mailbox.history_floor:
                raise SandboxError(
                    404,
                    "Requested entity was not found.",
                    reason="notFound",
                )

            matches = [
                record
                for record in mailbox.history
                if record.id > after
                and (not history_types or record.kind in history_types)
                and (
                    label_id is None
                    or label_id in record.message_label_ids
                    or label_id in record.changed_label_ids
                )
            ]
            page = matches[:size]
            response: dict[str, Any] = {"historyId": str(mailbox.history_id)}
            if page:
                response["history"] = [record.to_json() for record in page]
            if len(matches) > size:
                response["nextPageToken"] = _encode_token(page[-1].id)
            return response

    def list_messages(
        self,
        address: str,
        *,
        q: str | None,
        label_ids: list[str],
        max_results: str | None,
        page_token: str | None,
        include_spam_trash: bool,
    ) -> dict[str, Any]:
        size = _page_size(max_results)
        cursor = _decode_token(page_token, 2) if page_token else None

        with self._lock:
            mailbox = self._mailbox(address)

            def resolve(name: str) -> str | None:
                try:
                    return self._label_id_for(
                        mailbox, name.replace("-", " "), create=False
                    )
                except SandboxError:
                    pass
                try:
                    return self._label_id_for(mailbox, name, create=False)
                except SandboxError:
                    return None

            try:
                predicates, named = compile_query(
                    q or "", now_ms=self.now_ms(), resolve_label=resolve
                )
            except QueryError as exc:
                raise SandboxError(400, f"Invalid query: {exc}") from exc
            wanted_labels = set(label_ids)
            named |= wanted_labels
            hidden = set() if include_spam_trash else {"SPAM", "TRASH"} - named

            matches: list[_Message] = []
            for message in mailbox.messages.values():
                labels = frozenset(message.label_ids)
                if not wanted_labels <= labels or labels & hidden:
                    continue
                view = MessageView(labels, message.internal_date_ms, message.summary)
                if all(predicate(view) for predicate in predicates):
                    matches.append(message)

            matches.sort(key=_Message.sort_key)
            total = len(matches)
            if cursor is not None:
                last_key = (cursor[0], cursor[1])
                matches = [m for m in matches if m.sort_key() > last_key]
            page = matches[:size]

            response: dict[str, Any] = {"resultSizeEstimate": total}
            if page:
                response["messages"] = [
                    {"id": m.id, "threadId": m.thread_id} for m in page
                ]
            if len(matches) > size:
                response["nextPageToken"] = _encode_token(*page[-1].sort_key())
            return response

    def _message(self, mailbox: _Mailbox, message_id: str) -> _Message:
        message = mailbox.messages.get(message_id)
        if message is None:
            raise SandboxError(404, "Requested entity was not found.")
        return message

    def get_message(
        self,
        address: str,
        message_id: str,
        *,
        format: str | None,
        metadata_headers: list[str],
    ) -> dict[str, Any]:
        shape = format or "full"
        if shape not in ("minimal", "metadata", "full", "raw"):
            raise SandboxError(400, f"Invalid format: {shape!r}")

        with self._lock:
            message = self._message(self._mailbox(address), message_id)
            rendered = message.reference()
            rendered.update(
                {
                    "snippet": message.summary.snippet,
                    "sizeEstimate": len(message.raw),
                    "historyId": str(message.history_id),
                    "internalDate": str(message.internal_date_ms),
                }
            )
            raw = message.raw

        # Rendering parses the MIME tree; it needs no lock since raw is immutable.
        if shape == "raw":
            rendered["raw"] = mime.b64url_encode(raw)
        elif shape == "metadata":
            rendered["payload"] = mime.render_payload(
                raw,
                message_id,
                header_filter=metadata_headers or None,
                with_parts=False,
            )
        elif shape == "full":
            rendered["payload"] = mime.render_payload(raw, message_id)
        return rendered

    def get_attachment(
        self, address: str, message_id: str, attachment_id: str
    ) -> dict[str, Any]:
        with self._lock:
            raw = self._message(self._mailbox(address), message_id).raw
        location = mime.parse_attachment_id(attachment_id)
        content = None
        if location is not None and location[0] == message_id:
            content = mime.attachment_bytes(raw, location[1])
        if content is None:
            raise SandboxError(404, "Requested entity was not found.")
        return {
            "attachmentId": attachment_id,
            "size": len(content),
            "data": mime.b64url_encode(content),
        }

    def modify_message(
        self, address: str, message_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        add = body.get("addLabelIds") or []
        remove = body.get("removeLabelIds") or []
        if not isinstance(add, list) or not isinstance(remove, list):
            raise SandboxError(400, "addLabelIds and removeLabelIds must be lists")

        with self._lock:
            mailbox = self._mailbox(address)
            message = self._message(mailbox, message_id)
            for label in [*add, *remove]:
                if str(label) not in mailbox.labels:
                    raise SandboxError(400, f"Invalid label: {label}")

            added = [str(x) for x in add if str(x) not in message.label_ids]
            added = list(dict.fromkeys(added))
            removed = [
                str(x) for x in dict.fromkeys(remove) if str(x) in message.label_ids
            ]
            removed = [x for x in removed if x not in added]

            if added:
                message.label_ids.extend(added)
                self._record(mailbox, "labelAdded", message, added)
                self._notify(mailbox, added_labels=None)
            if removed:
                message.label_ids = [x for x in message.label_ids if x not in removed]
                self._record(mailbox, "labelRemoved", message, removed)
                self._notify(mailbox, added_labels=None)
            if added or removed:
                self._changed()
            return message.reference()

    # ------------------------------------------------------------ persistence

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """The persistent part of the state as JSON-ready data, with its revision."""
        with self._lock:
            mailboxes = [
                {
                    "address": m.address,
                    "history_id": m.history_id,
                    "history_floor": m.history_floor,
                    "next_label_number": m.next_label_number,
                    "user_labels": [
                        {"id": label.id, "name": label.name}
                        for label in m.labels.values()
                        if label.type == "user"
                    ],
                    "messages": [
                        {
                            "id": msg.id,
                            "thread_id": msg.thread_id,
                            "raw": mime.b64url_encode(msg.raw),
                            "label_ids": msg.label_ids,
                            "internal_date_ms": msg.internal_date_ms,
                            "history_id": msg.history_id,
                            "seq": msg.seq,
                        }
                        for msg in m.messages.values()
                    ],
                    "history": [record.__dict__ for record in m.history],
                    "watch": None if m.watch is None else m.watch.__dict__,
                    "last_notified_ms": m.last_notified_ms,
                }
                for m in self._mailboxes.values()
            ]
            data = {
                "format": _SNAPSHOT_FORMAT,
                "clock_offset_s": self._clock_offset_s,
                "message_seq": self._message_seq,
                "mailboxes": mailboxes,
            }
            # Round-trip through JSON so callers get data no later change touches.
            return self._revision, json.loads(json.dumps(data))

    def restore(self, data: dict[str, Any]) -> None:
        """Replace mailboxes and clock offset with those of a snapshot."""
        if data.get("format") != _SNAPSHOT_FORMAT:
            raise ValueError(f"not a sandbox state snapshot: {data.get('format')!r}")
        mailboxes: dict[str, _Mailbox] = {}
        for item in data["mailboxes"]:
            labels = _system_labels()
            for label in item["user_labels"]:
                labels[label["id"]] = _Label(label["id"], label["name"], "user")
            messages = {}
            for msg in item["messages"]:
                raw = mime.b64url_decode(msg["raw"])
                messages[msg["id"]] = _Message(
                    id=msg["id"],
                    thread_id=msg["thread_id"],
                    raw=raw,
                    label_ids=list(msg["label_ids"]),
                    internal_date_ms=msg["internal_date_ms"],
                    history_id=msg["history_id"],
                    seq=msg["seq"],
                    summary=mime.summarize(raw),
                )
            watch = item["watch"]
            mailboxes[item["address"]] = _Mailbox(
                address=item["address"],
                history_id=item["history_id"],
                history_floor=item["history_floor"],
                labels=labels,
                next_label_number=item["next_label_number"],
                messages=messages,
                history=[_Record(**record) for record in item["history"]],
                watch=None if watch is None else _Watch(**watch),
                last_notified_ms=item["last_notified_ms"],
            )

        with self._lock:
            self._mailboxes = mailboxes
            self._clock_offset_s = float(data["clock_offset_s"])
            self._message_seq = int(data["message_seq"])


def _attachment_specs(items: Any) -> list[mime.AttachmentSpec]:
    if not isinstance(items, list):
        raise SandboxError(400, "attachments must be a list")
    specs: list[mime.AttachmentSpec] = []
    for item in items:
        if not isinstance(item, dict):
            raise SandboxError(400, "each attachment must be an object")
        filename = item.get("filename") or item.get("name")
        if not isinstance(filename, str) or not filename:
            raise SandboxError(400, "an attachment needs a filename")
        content_type = item.get("content_type", "application/octet-stream")
        if not isinstance(content_type, str) or "/" not in content_type:
            raise SandboxError(400, f"bad content_type for {filename}")

        if "content_base64" in item:
            try:
                content = mime.b64url_decode(str(item["content_base64"]))
            except ValueError as exc:
                raise SandboxError(400, f"attachment {filename}: {exc}") from exc
        else:
            size = item.get("size")
            if not isinstance(size, int) or not 0 <= size <= _MAX_ATTACHMENT_BYTES:
                raise SandboxError(
                    400,
                    f"attachment {filename} needs content_base64 or a size "
                    f"of 0..{_MAX_ATTACHMENT_BYTES} bytes",
                )
            content = mime.filler_bytes(size)
        specs.append(mime.AttachmentSpec(filename, content_type, content))
    return specs
