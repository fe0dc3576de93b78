"""Stable, opaque document ids and task names.

Ids are hashes so that no raw address lands in a document path or a log line,
and so that writes spread over the key space instead of hot-spotting.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "action_id",
    "dead_letter_id",
    "mailbox_id",
    "message_key",
    "push_event_id",
    "stable_hash",
    "task_name_for_event",
]

_SEPARATOR = "\x1f"  # unit separator: cannot occur in any of the joined parts


def stable_hash(*parts: str) -> str:
    """Hex SHA-256 of the parts, joined unambiguously."""
    joined = _SEPARATOR.join(parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def mailbox_id(address: str) -> str:
    """Id of a mailbox document: the hash of the lower-cased address."""
    return stable_hash("mailbox", address.strip().lower())


def push_event_id(subscription: str, message_id: str) -> str:
    """Id of a push event: one per Pub/Sub message on one subscription."""
    return stable_hash("push", subscription, message_id)


def message_key(mailbox: str, gmail_message_id: str) -> str:
    """Id of a processed-message record (`mailbox` is a mailbox id)."""
    return stable_hash("message", mailbox, gmail_message_id)


def action_id(mailbox: str, gmail_message_id: str, action_name: str) -> str:
    """Id of an action record: one per (mailbox, message, action)."""
    return stable_hash("action", mailbox, gmail_message_id, action_name)


def dead_letter_id(kind: str, key: str) -> str:
    """Id of a dead letter: one per (kind, key), so replays overwrite, not pile up."""
    return stable_hash("dead", kind, key)


def task_name_for_event(event_id: str) -> str:
    """Cloud Tasks task id for a push event: a hash, never sequential."""
    # Task ids allow letters, digits, '-' and '_'; a hex digest is all of those.
    return f"push-{event_id}"
