"""The per-mailbox lease rules, shared by every MailboxStore implementation.

One worker at a time syncs a mailbox. A task that finds the lease held does not
wait: it raises the mailbox's `pendingHistoryId` and leaves. The holder, before
it lets go, compares that mark with the checkpoint it reached and runs another
pass if the mark is beyond it, so a burst of notifications becomes a few passes
and none of them is dropped.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from inboxsync.errors import TransientError
from inboxsync.sync.models import Mailbox

__all__ = [
    "LeaseLost",
    "held_by_earlier_attempt",
    "lease_is_free",
    "lease_owner_for",
    "needs_another_pass",
]

_SEP = "#"  # Cloud Tasks task names use only letters, digits, `-` and `_`


class LeaseLost(TransientError):
    """The lease ran out mid-pass and another task took it: stop before acting."""


def lease_owner_for(task_name: str | None, retry_count: int = 0) -> str:
    """The lease owner of one execution of a task.

    Unique per execution: Cloud Tasks may deliver one attempt twice, and the two
    must not share the lease. A later attempt of the same task (its previous one
    died holding the lease) may take it straight back instead of waiting it out.
    """
    if not task_name:
        return f"anonymous-{uuid.uuid4().hex}"
    return f"{task_name}{_SEP}{retry_count}{_SEP}{uuid.uuid4().hex[:12]}"


def held_by_earlier_attempt(lease_owner: str | None, owner: str) -> bool:
    """The lease belongs to an earlier attempt of owner's own task."""
    held, ours = _attempt(lease_owner), _attempt(owner)
    return (
        held is not None
        and ours is not None
        and held[0] == ours[0]
        and held[1] < ours[1]
    )


def lease_is_free(mailbox: Mailbox, owner: str, now: datetime) -> bool:
    if mailbox.lease_owner is None or mailbox.lease_owner == owner:
        return True
    if held_by_earlier_attempt(mailbox.lease_owner, owner):
        return True
    return mailbox.lease_expires_at is None or mailbox.lease_expires_at <= now


def _attempt(owner: str | None) -> tuple[str, int] | None:
    parts = (owner or "").rsplit(_SEP, 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def needs_another_pass(mailbox: Mailbox) -> bool:
    """Work was announced (while the lease was held) beyond the checkpoint."""
    return mailbox.pending_history_id > (mailbox.checkpoint or 0)
