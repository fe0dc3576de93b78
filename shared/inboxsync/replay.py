"""Listing and replaying dead letters (`inboxsync dead-letters ...`).

A dead letter keeps what the pipeline gave up on. Replaying sends it back in at
the point where it failed:

* `push`: the stored push body goes through the push receiver again (without
  the token check: the operator's own credentials are the authority here). A
  body that is still invalid stays a dead letter.
* `sync_task`, `unknown_mailbox`: a new sync task for the mailbox is enqueued
  (under a fresh name), e.g. once its credentials are fixed or it is
  registered.
* `action`: not replayable yet; the message's action record says `failed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from inboxsync import ids
from inboxsync.errors import InboxsyncError
from inboxsync.ports import TaskQueue
from inboxsync.receiver import PushReceiver, PushRequest

__all__ = ["DeadLetter", "DeadLetterArchive", "DeadLetterReplayer", "ReplayRefused"]

_SYNC_KINDS = ("sync_task", "unknown_mailbox")


class DeadLetterArchive(Protocol):
    def list_dead_letters(self) -> list[tuple[str, dict[str, Any]]]: ...

    def get_dead_letter(self, letter_id: str) -> dict[str, Any] | None: ...

    def mark_dead_letter_replayed(self, letter_id: str) -> None: ...


class ReplayRefused(InboxsyncError):
    """The dead letter cannot be replayed (yet); the message says why."""


@dataclass(frozen=True)
class DeadLetter:
    letter_id: str
    kind: str
    error: str
    failures: int
    replayed: bool
    payload: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.letter_id,
            "kind": self.kind,
            "error": self.error,
            "failures": self.failures,
            "replayed": self.replayed,
        }


class DeadLetterReplayer:
    def __init__(
        self, archive: DeadLetterArchive, *, receiver: PushReceiver, queue: TaskQueue
    ) -> None:
        self._archive = archive
        self._receiver = receiver
        self._queue = queue

    def list(self, kind: str | None = None) -> list[DeadLetter]:
        letters = [_letter(i, data) for i, data in self._archive.list_dead_letters()]
        return [letter for letter in letters if kind is None or letter.kind == kind]

    def get(self, letter_id: str) -> DeadLetter:
        data = self._archive.get_dead_letter(letter_id)
        if data is None:
            raise ReplayRefused(f"no dead letter with id {letter_id}")
        return _letter(letter_id, data)

    def replay(self, letter_id: str) -> str:
        """Send one dead letter back in; returns what happened to it."""
        letter = self.get(letter_id)
        if letter.kind == "push":
            outcome = self._replay_push(letter)
        elif letter.kind in _SYNC_KINDS:
            outcome = self._replay_sync(letter)
        else:
            raise ReplayRefused(
                f"{letter.kind} dead letters cannot be replayed yet; the action"
                " record shows the failure"
            )
        self._archive.mark_dead_letter_replayed(letter_id)
        return outcome

    def _replay_push(self, letter: DeadLetter) -> str:
        body = letter.payload.get("body")
        if not isinstance(body, bytes):
            raise ReplayRefused("this push dead letter has no stored body")
        if letter.payload.get("truncated"):
            raise ReplayRefused("the stored body was cut at the size limit")
        result = self._receiver.handle(PushRequest({}, body))
        if result.status >= 300 or result.outcome == "invalid":
            raise ReplayRefused(f"the push is still refused: {result.detail}")
        return result.outcome

    def _replay_sync(self, letter: DeadLetter) -> str:
        mailbox_id = letter.payload.get("mailbox_id")
        history_id = letter.payload.get("history_id")
        if not isinstance(mailbox_id, str) or not isinstance(history_id, int | None):
            raise ReplayRefused(
                "this dead letter holds no sync task (its body was invalid)"
            )
        replay_id = ids.stable_hash("replay", letter.letter_id, str(letter.failures))
        created = self._queue.enqueue(
            f"replay-{replay_id}",
            {
                "event_id": letter.payload.get("event_id"),
                "mailbox_id": mailbox_id,
                "history_id": history_id,
                "publish_time": letter.payload.get("publish_time"),
            },
        )
        return "enqueued" if created else "already enqueued"


def _letter(letter_id: str, data: dict[str, Any]) -> DeadLetter:
    payload = data.get("payload")
    return DeadLetter(
        letter_id=letter_id,
        kind=str(data.get("kind", "")),
        error=str(data.get("error", "")),
        failures=int(data.get("failures") or 0),
        replayed=bool(data.get("replayed")),
        payload=payload if isinstance(payload, dict) else {},
    )
