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

__all__ = ["LeaseLost", "lease_is_free", "lease_owner_for", "needs_another_pass"]


class LeaseLost(TransientError):
    """The lease ran out mid-pass and another task took it: stop before acting."""


def lease_owner_for(task_name: str | None) -> str:
    """The lease owner of a task.

    A Cloud Tasks retry keeps its task name, so a task whose previous attempt
    died holding the lease takes it straight back instead of waiting it out.
    """
    return task_name or f"anonymous-{uuid.uuid4().hex}"


def lease_is_free(mailbox: Mailbox, owner: str, now: datetime) -> bool:
    if mailbox.lease_owner is None or mailbox.lease_owner == owner:
        return True
    return mailbox.lease_expires_at is None or mailbox.lease_expires_at <= now


def needs_another_pass(mailbox: Mailbox) -> bool:
    """Work was announced (while the lease was held) beyond the checkpoint."""
    return mailbox.pending_history_id > (mailbox.checkpoint or 0)
