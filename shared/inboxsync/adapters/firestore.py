"""Firestore adapter: the only module (with its siblings) that imports the SDK.

Translates SDK exceptions into the product's error tree and keeps the
collection names in one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from inboxsync import ids
from inboxsync.config import CommonSettings
from inboxsync.errors import StoreUnavailable
from inboxsync.ports import EVENT_DISPATCHED, EVENT_RECEIVED, PushEvent

__all__ = [
    "ACTIONS",
    "DEAD_LETTERS",
    "MAILBOXES",
    "PROCESSED_MESSAGES",
    "PUSH_EVENTS",
    "FirestoreStore",
    "create_document",
    "make_client",
    "store_errors",
]

PUSH_EVENTS = "push_events"
MAILBOXES = "mailboxes"
PROCESSED_MESSAGES = "processed_messages"
ACTIONS = "actions"
DEAD_LETTERS = "dead_letters"


def make_client(common: CommonSettings) -> firestore.Client:
    """A Firestore client; against the emulator when FIRESTORE_EMULATOR_HOST is set."""
    if common.firestore_emulator_host:
        # The SDK takes the emulator address only from the environment; settings
        # may come from elsewhere (tests, benchmarks), so put it there.
        # Anonymous credentials keep it from looking for real ones.
        os.environ["FIRESTORE_EMULATOR_HOST"] = common.firestore_emulator_host
        return firestore.Client(
            project=common.project,
            database=common.firestore_database,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        )
    return firestore.Client(project=common.project, database=common.firestore_database)


@contextmanager
def store_errors(operation: str) -> Iterator[None]:
    """Turn every SDK failure inside the block into StoreUnavailable."""
    try:
        yield
    except gexc.AlreadyExists:
        raise
    except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
        raise StoreUnavailable(f"Firestore {operation} failed: {exc}") from exc


def create_document(
    ref: firestore.DocumentReference,
    data: Mapping[str, Any],
    *,
    timeout_s: float,
) -> bool:
    """Atomic create-if-absent: True if written, False if the document existed."""
    retry = gretry.Retry(deadline=timeout_s, initial=0.05, maximum=1.0)
    with store_errors("create"):
        try:
            ref.create(dict(data), retry=retry, timeout=timeout_s)
        except gexc.AlreadyExists:
            return False
    return True


class FirestoreStore:
    """Push markers and dead letters in Firestore."""

    def __init__(self, client: firestore.Client, *, timeout_s: float = 5.0) -> None:
        self._client = client
        self._timeout_s = timeout_s

    @property
    def client(self) -> firestore.Client:
        return self._client

    def create_push_event(self, event: PushEvent) -> bool:
        ref = self._client.collection(PUSH_EVENTS).document(event.event_id)
        return create_document(
            ref,
            {
                "state": EVENT_RECEIVED,
                "mailboxId": event.mailbox_id,
                "historyId": event.history_id,
                "messageId": event.message_id,
                "subscription": event.subscription,
                "publishTime": event.publish_time,
                "taskName": event.task_name,
                "receivedAt": firestore.SERVER_TIMESTAMP,
                "expiresAt": event.expires_at,
            },
            timeout_s=self._timeout_s,
        )

    def push_event_state(self, event_id: str) -> str | None:
        ref = self._client.collection(PUSH_EVENTS).document(event_id)
        with store_errors("read push event"):
            snapshot = ref.get(timeout=self._timeout_s)
        if not snapshot.exists:
            return None
        state = snapshot.get("state")
        return str(state) if state else None

    def mark_push_event_dispatched(self, event_id: str) -> None:
        """Record that the event's sync task ran (so duplicates need no enqueue)."""
        ref = self._client.collection(PUSH_EVENTS).document(event_id)
        # NotFound: the TTL policy removed it already; nothing left to mark.
        with store_errors("mark push event"), suppress(gexc.NotFound):
            ref.update(
                {
                    "state": EVENT_DISPATCHED,
                    "dispatchedAt": firestore.SERVER_TIMESTAMP,
                },
                timeout=self._timeout_s,
            )

    def put_dead_letter(
        self, kind: str, key: str, payload: Mapping[str, Any], error: str
    ) -> str:
        letter_id = ids.dead_letter_id(kind, key)
        ref = self._client.collection(DEAD_LETTERS).document(letter_id)
        with store_errors("write dead letter"):
            ref.set(
                {
                    "kind": kind,
                    "key": key,
                    "payload": dict(payload),
                    "error": error,
                    "lastFailedAt": datetime.now(UTC),
                    "failures": firestore.Increment(1),
                    "replayed": False,
                },
                merge=True,
                timeout=self._timeout_s,
            )
        return letter_id

    def list_dead_letters(self) -> list[tuple[str, dict[str, Any]]]:
        with store_errors("list dead letters"):
            docs = list(self._client.collection(DEAD_LETTERS).stream())
        return [(doc.id, doc.to_dict() or {}) for doc in docs]

    def get_dead_letter(self, letter_id: str) -> dict[str, Any] | None:
        ref = self._client.collection(DEAD_LETTERS).document(letter_id)
        with store_errors("read dead letter"):
            snapshot = ref.get(timeout=self._timeout_s)
        return (snapshot.to_dict() or {}) if snapshot.exists else None

    def mark_dead_letter_replayed(self, letter_id: str) -> None:
        ref = self._client.collection(DEAD_LETTERS).document(letter_id)
        with store_errors("mark dead letter replayed"):
            ref.update(
                {"replayed": True, "replayedAt": datetime.now(UTC)},
                timeout=self._timeout_s,
            )
