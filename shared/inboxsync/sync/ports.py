"""The interfaces the sync engine talks to; adapters and test fakes implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from inboxsync.sync.models import (
    GmailMessage,
    HistoryPage,
    Mailbox,
    MessageFormat,
    MessagePage,
    QuotaState,
)

__all__ = [
    "ActionLedger",
    "GmailConnector",
    "MailboxGmail",
    "MailboxStore",
    "MessageLedger",
]


class MailboxGmail(Protocol):
    """Gmail calls for one mailbox; errors come as the product's error tree."""

    def get_profile_history_id(self) -> int:
        """The mailbox's current historyId (users.getProfile)."""
        ...

    def list_history(
        self, start_history_id: int, page_token: str | None
    ) -> HistoryPage:
        """One page of history.list after start_history_id; HistoryExpired on 404."""
        ...

    def list_messages(
        self, query: str, page_token: str | None, page_size: int
    ) -> MessagePage:
        """One page of messages.list for a search query."""
        ...

    def get_messages(
        self, message_ids: Sequence[str], fmt: MessageFormat
    ) -> Mapping[str, GmailMessage | None]:
        """Fetch up to 50 messages in one batch; None for a message that is gone."""
        ...

    def add_labels(self, message_id: str, label_ids: Sequence[str]) -> None:
        """Add labels to a message (messages.modify); adding twice is harmless."""
        ...


class GmailConnector(Protocol):
    def for_mailbox(self, mailbox: Mailbox) -> MailboxGmail:
        """A Gmail client authorised for this mailbox."""
        ...


class MailboxStore(Protocol):
    """The `mailboxes` collection: status, checkpoint, lease, quota window."""

    def get_mailbox(self, mailbox_id: str) -> Mailbox | None: ...

    def acquire_lease(
        self,
        mailbox_id: str,
        owner: str,
        wanted_history_id: int,
        *,
        now: datetime,
        lease_s: float,
    ) -> Mailbox | None:
        """Take the lease and return the fresh mailbox; or, if another owner holds
        it, record wanted_history_id as pending work for that owner and return None."""
        ...

    def advance_checkpoint(
        self,
        mailbox_id: str,
        history_id: int,
        *,
        quota: QuotaState,
        now: datetime,
        lease_s: float,
    ) -> None:
        """Move the checkpoint to history_id unless it is further already."""
        ...

    def renew_lease(
        self, mailbox_id: str, owner: str, *, now: datetime, lease_s: float
    ) -> bool:
        """Extend the lease if owner still holds it; False if it has lost it."""
        ...

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
        """Release the lease, or, when pending work is beyond the checkpoint (and not
        force), keep it, extend it and return the fresh mailbox for another pass."""
        ...

    def mark_error(self, mailbox_id: str, error: str, *, now: datetime) -> None:
        """Put the mailbox in status `error` with the reason."""
        ...

    def note_skipped(self, mailbox_id: str, *, now: datetime) -> None:
        """Count a notification for a disabled or errored mailbox."""
        ...


class MessageLedger(Protocol):
    """The `processed_messages` collection: entity-level dedup."""

    def claim_message(
        self, mailbox_id: str, message_id: str, *, expires_at: datetime
    ) -> bool:
        """Create the marker; False only if a marker says the message is finished."""
        ...

    def finish_message(
        self, mailbox_id: str, message_id: str, outcome: str
    ) -> None: ...


class ActionLedger(Protocol):
    """The `actions` collection: action-level dedup, `started` → `done`/`failed`."""

    def begin_action(
        self, record_id: str, fields: Mapping[str, Any], *, expires_at: datetime
    ) -> str:
        """An ActionState: NEW and RETRY mean perform it, DONE and FAILED skip it."""
        ...

    def finish_action(self, record_id: str, result: Mapping[str, Any]) -> None: ...

    def fail_action(self, record_id: str, error: str) -> None: ...
