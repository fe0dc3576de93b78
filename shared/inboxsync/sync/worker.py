"""The sync worker: authenticate a Cloud Tasks request, run the engine, pick a status.

- 401/403: no valid OIDC token from an allowed caller.
- 204: synced, covered, coalesced, skipped, or given up on and dead-lettered
  (bad body, permanent error, or the last allowed attempt failing).
- 503 + Retry-After: a transient error with attempts left; Cloud Tasks backs off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Protocol

from inboxsync.auth import TokenVerifier
from inboxsync.errors import (
    InvalidPayload,
    PermanentError,
    TransientError,
)
from inboxsync.handling import IncomingRequest, Outcome, check_caller, log_outcome
from inboxsync.logs import get_logger
from inboxsync.ports import DeadLetterStore
from inboxsync.sync.engine import SyncEngine, SyncStats
from inboxsync.sync.models import SyncTask

__all__ = ["SyncOutcome", "SyncRequest", "SyncWorker", "parse_task"]

_log = get_logger("inboxsync.run_sync")
_DEFAULT_RETRY_AFTER_S = 10.0
_HEX = set("0123456789abcdef")


class DispatchMarker(Protocol):
    def mark_push_event_dispatched(self, event_id: str) -> None: ...


SyncRequest = IncomingRequest
SyncOutcome = Outcome


class SyncWorker:
    def __init__(
        self,
        *,
        verifier: TokenVerifier | None,
        engine: SyncEngine,
        events: DispatchMarker,
        dead_letters: DeadLetterStore,
        max_attempts: int,
        max_body_bytes: int = 64 * 1024,
        project: str = "",
    ) -> None:
        self._verifier = verifier
        self._engine = engine
        self._events = events
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self.max_body_bytes = max_body_bytes
        self.project = project

    def handle(self, request: SyncRequest) -> SyncOutcome:
        started = time.perf_counter()
        stats = SyncStats()
        fields: dict[str, Any] = {}
        try:
            outcome = self._handle(request, stats, fields)
        except TransientError as exc:  # the dead-letter store itself is down
            outcome = SyncOutcome(503, "unavailable", str(exc), _retry_after(exc))
        level = logging.INFO if outcome.status < 500 else logging.WARNING
        if outcome.outcome in {"permanent_error", "gave_up", "invalid"}:
            level = logging.ERROR
        fields.update(stats.as_fields())
        if outcome.status != 204:
            fields["error"] = outcome.detail
        log_outcome(
            _log, "sync task", outcome, started=started, level=level, fields=fields
        )
        return outcome

    def _handle(
        self, request: SyncRequest, stats: SyncStats, fields: dict[str, Any]
    ) -> SyncOutcome:
        refused = check_caller(self._verifier, request)
        if refused is not None:
            return refused

        try:
            task = parse_task(request)
        except InvalidPayload as exc:
            key = request.header("X-CloudTasks-TaskName") or _body_hash(request.body)
            payload = {"body": request.body[:4096].decode("utf-8", "replace")}
            self._dead_letters.put_dead_letter("sync_task", key, payload, str(exc))
            return SyncOutcome(204, "invalid", str(exc))

        attempt = task.retry_count + 1
        fields.update(
            mailbox_id=task.mailbox_id,
            event_id=task.event_id,
            history_id=task.history_id,
            attempt=attempt,
        )
        try:
            if task.event_id:
                self._events.mark_push_event_dispatched(task.event_id)
            result = self._engine.sync(task, stats)
        except TransientError as exc:
            if attempt < self._max_attempts:
                return SyncOutcome(503, "retry", str(exc), _retry_after(exc))
            self._give_up(task, f"gave up after {attempt} attempts: {exc}")
            return SyncOutcome(204, "gave_up", str(exc))
        except PermanentError as exc:
            self._give_up(task, f"{type(exc).__name__}: {exc}")
            return SyncOutcome(204, "permanent_error", str(exc))
        return SyncOutcome(204, result.outcome)

    def _give_up(self, task: SyncTask, error: str) -> None:
        key = task.task_name or f"{task.mailbox_id}:{task.history_id}:{task.event_id}"
        payload = {
            "event_id": task.event_id,
            "mailbox_id": task.mailbox_id,
            "history_id": task.history_id,
            "publish_time": task.publish_time,
        }
        self._dead_letters.put_dead_letter("sync_task", key, payload, error)


def parse_task(request: SyncRequest) -> SyncTask:
    """The task body `{event_id, mailbox_id, history_id, publish_time}` and headers."""
    if request.body_truncated:
        raise InvalidPayload("task body is larger than allowed")
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise InvalidPayload(f"task body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidPayload("task body is not a JSON object")
    mailbox_id = body.get("mailbox_id")
    if (
        not isinstance(mailbox_id, str)
        or len(mailbox_id) != 64
        or set(mailbox_id) - _HEX
    ):
        raise InvalidPayload("task body has no valid mailbox_id (a hex hash)")
    history_id = body.get("history_id")
    if isinstance(history_id, str) and history_id.isdigit():
        history_id = int(history_id)
    if history_id is not None and (
        not isinstance(history_id, int)
        or isinstance(history_id, bool)
        or history_id < 1
    ):
        raise InvalidPayload("task body has an invalid history_id")
    event_id = body.get("event_id")
    publish_time = body.get("publish_time")
    retry_header = (request.header("X-CloudTasks-TaskRetryCount") or "0").strip()
    return SyncTask(
        mailbox_id=mailbox_id,
        history_id=history_id,
        event_id=event_id if isinstance(event_id, str) and event_id else None,
        publish_time=publish_time if isinstance(publish_time, str) else None,
        task_name=request.header("X-CloudTasks-TaskName") or None,
        retry_count=int(retry_header) if retry_header.isdigit() else 0,
    )


def _retry_after(exc: TransientError) -> float:
    return (
        exc.retry_after_s if exc.retry_after_s is not None else _DEFAULT_RETRY_AFTER_S
    )


def _body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
