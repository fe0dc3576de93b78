"""The push receiver: authenticate, parse, dedup, enqueue, acknowledge.

The common path is one Firestore create and one Cloud Tasks call. The marker is
written first in state `received`; the sync worker moves it to `dispatched`
when the task runs. A redelivery that finds a marker still in `received`
enqueues again under the same hashed task name, so a crash between the two
calls cannot swallow the notification and a retry cannot create a second task.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from inboxsync import ids
from inboxsync.auth import TokenVerifier
from inboxsync.envelope import PushEnvelope, parse_push_body
from inboxsync.errors import InvalidPayload, TransientError
from inboxsync.handling import IncomingRequest, Outcome, check_caller, log_outcome
from inboxsync.logs import get_logger
from inboxsync.ports import (
    EVENT_DISPATCHED,
    DeadLetterStore,
    PushEvent,
    PushEventStore,
    TaskQueue,
)

__all__ = ["PushOutcome", "PushReceiver", "PushRequest"]

_log = get_logger("inboxsync.receive_push")
_LEVELS = {
    "enqueued": logging.INFO,
    "recovered": logging.INFO,
    "invalid": logging.ERROR,
    "unavailable": logging.ERROR,
}


PushRequest = IncomingRequest
PushOutcome = Outcome


class PushReceiver:
    def __init__(
        self,
        *,
        verifier: TokenVerifier | None,
        events: PushEventStore,
        dead_letters: DeadLetterStore,
        queue: TaskQueue,
        event_ttl: timedelta,
        max_body_bytes: int,
        project: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._verifier = verifier
        self._events = events
        self._dead_letters = dead_letters
        self._queue = queue
        self._event_ttl = event_ttl
        self._clock = clock
        self.max_body_bytes = max_body_bytes
        self.project = project

    def handle(self, request: PushRequest) -> PushOutcome:
        """Handle one push and write its one log line."""
        started = time.perf_counter()
        fields: dict[str, Any] = {}  # filled in as the push is understood
        outcome = self._handle(request, fields)
        fields["detail"] = outcome.detail
        level = _LEVELS.get(outcome.outcome, logging.WARNING)
        log_outcome(_log, "push", outcome, started=started, level=level, fields=fields)
        return outcome

    def _handle(self, request: PushRequest, fields: dict[str, Any]) -> PushOutcome:
        refused = check_caller(self._verifier, request)
        if refused is not None:
            return refused

        try:
            if request.body_truncated or len(request.body) > self.max_body_bytes:
                raise InvalidPayload(
                    f"body is larger than the {self.max_body_bytes} byte limit"
                )
            envelope = parse_push_body(request.body)
        except InvalidPayload as exc:
            return self._dead_letter(request, str(exc))

        try:
            return self._accept(envelope, fields)
        except TransientError as exc:
            return PushOutcome(503, "unavailable", str(exc), exc.retry_after_s)

    def _accept(self, envelope: PushEnvelope, fields: dict[str, Any]) -> PushOutcome:
        event_id = ids.push_event_id(envelope.subscription, envelope.message_id)
        mailbox_id = ids.mailbox_id(envelope.notification.email_address)
        history_id = envelope.notification.history_id
        task_name = ids.task_name_for_event(event_id)
        fields.update(event_id=event_id, mailbox_id=mailbox_id, history_id=history_id)
        if envelope.delivery_attempt is not None:
            fields["attempt"] = envelope.delivery_attempt

        created = self._events.create_push_event(
            PushEvent(
                event_id=event_id,
                mailbox_id=mailbox_id,
                history_id=history_id,
                message_id=envelope.message_id,
                subscription=envelope.subscription,
                publish_time=envelope.publish_time,
                task_name=task_name,
                expires_at=self._clock() + self._event_ttl,
            )
        )
        # Only duplicates pay for this read.
        if not created and self._events.push_event_state(event_id) == EVENT_DISPATCHED:
            return PushOutcome(204, "duplicate")

        task_body: dict[str, Any] = {
            "event_id": event_id,
            "mailbox_id": mailbox_id,
            "history_id": history_id,
            "publish_time": envelope.publish_time,
        }
        new_task = self._queue.enqueue(task_name, task_body)
        if created:
            return PushOutcome(204, "enqueued")
        if new_task:
            return PushOutcome(204, "recovered", "marker had no task yet")
        return PushOutcome(204, "duplicate", "task already queued")

    def _dead_letter(self, request: PushRequest, reason: str) -> PushOutcome:
        body = request.body[: self.max_body_bytes]
        key = hashlib.sha256(body).hexdigest()
        payload = {
            "body": body,
            "bodyBytes": request.body_length or len(request.body),
            "truncated": request.body_truncated,
        }
        try:
            letter_id = self._dead_letters.put_dead_letter("push", key, payload, reason)
        except TransientError as exc:
            # Not stored anywhere yet: let Pub/Sub keep it and retry.
            return PushOutcome(
                503, "unavailable", f"{reason}; {exc}", exc.retry_after_s
            )
        return PushOutcome(204, "invalid", f"{reason} (dead letter {letter_id})")
