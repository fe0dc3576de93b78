"""The small interfaces the product logic talks to.

Adapters (Firestore, Cloud Tasks, Gmail) implement these; unit tests use fakes
that implement them too, instead of patching SDK internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "EVENT_DISPATCHED",
    "EVENT_RECEIVED",
    "DeadLetterStore",
    "PushEvent",
    "PushEventStore",
    "TaskQueue",
]

# States of a push_events marker: written by receive_push, moved on by run_sync.
EVENT_RECEIVED = "received"
EVENT_DISPATCHED = "dispatched"


@dataclass(frozen=True)
class PushEvent:
    """The dedup marker of one Pub/Sub message (collection `push_events`)."""

    event_id: str
    mailbox_id: str
    history_id: int
    message_id: str
    subscription: str
    publish_time: str | None
    task_name: str
    expires_at: datetime


class PushEventStore(Protocol):
    def create_push_event(self, event: PushEvent) -> bool:
        """Write the marker in state `received`; False if it already existed."""
        ...

    def push_event_state(self, event_id: str) -> str | None:
        """The marker's state, or None if it does not exist (any more)."""
        ...


class DeadLetterStore(Protocol):
    def put_dead_letter(
        self, kind: str, key: str, payload: Mapping[str, Any], error: str
    ) -> str:
        """Keep something we gave up on, replayable later; returns its id."""
        ...


class TaskQueue(Protocol):
    def enqueue(self, task_name: str, body: Mapping[str, Any]) -> bool:
        """Create the named sync task; False if that name already existed."""
        ...
