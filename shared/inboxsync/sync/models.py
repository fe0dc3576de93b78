"""Plain values the sync engine passes between its parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

__all__ = [
    "ActionState",
    "GmailMessage",
    "HistoryChange",
    "HistoryPage",
    "Mailbox",
    "MessageFormat",
    "MessagePage",
    "QuotaState",
    "SyncTask",
]

STATUS_ACTIVE = "active"
STATUS_DISABLED = "disabled"
STATUS_ERROR = "error"


class MessageFormat(IntEnum):
    """Gmail `format` of messages.get, ordered by how much it returns."""

    MINIMAL = 1
    METADATA = 2
    FULL = 3

    @property
    def api_name(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class QuotaState:
    """Gmail units spent in the current one-minute window of one mailbox."""

    window_start_s: float = 0.0
    used_units: int = 0


@dataclass(frozen=True)
class Mailbox:
    """What the engine needs from a `mailboxes/{hash}` document."""

    mailbox_id: str
    address: str
    status: str = STATUS_ACTIVE
    auth: str = "none"  # none (sandbox) | delegated | oauth
    oauth_secret: str | None = None  # Secret Manager secret of an `oauth` mailbox
    checkpoint: int | None = None
    pending_history_id: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    quota: QuotaState = field(default_factory=QuotaState)


@dataclass(frozen=True)
class SyncTask:
    """One Cloud Tasks request for the sync worker, already parsed."""

    mailbox_id: str
    history_id: int | None
    event_id: str | None = None
    publish_time: str | None = None
    task_name: str | None = None
    retry_count: int = 0


@dataclass(frozen=True)
class HistoryChange:
    """One message mentioned in a history record, and why."""

    message_id: str
    kind: str  # "added" or "labels"
    added_labels: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HistoryPage:
    """One page of history.list: changes in order, plus where it leaves off."""

    changes: tuple[HistoryChange, ...]
    last_record_id: int | None
    response_history_id: int
    next_page_token: str | None


@dataclass(frozen=True)
class MessagePage:
    """One page of messages.list."""

    message_ids: tuple[str, ...]
    next_page_token: str | None


@dataclass(frozen=True)
class GmailMessage:
    """A fetched message, reduced to what rules and actions look at."""

    message_id: str
    thread_id: str
    label_ids: frozenset[str]
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-cased names
    has_attachment: bool = False
    snippet: str = ""
    internal_date_ms: int = 0
    size_estimate: int = 0

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def metadata(self) -> dict[str, Any]:
        """Message metadata safe to store or forward (no body)."""
        return {
            "messageId": self.message_id,
            "threadId": self.thread_id,
            "labelIds": sorted(self.label_ids),
            "from": self.header("from"),
            "to": self.header("to"),
            "subject": self.header("subject"),
            "date": self.header("date"),
            "snippet": self.snippet,
            "hasAttachment": self.has_attachment,
            "internalDateMs": self.internal_date_ms,
            "sizeEstimate": self.size_estimate,
        }


class ActionState:
    """Answers of the action ledger when an action is about to run."""

    NEW = "new"  # first time: record created in state `started`
    RETRY = "retry"  # a `started` record exists: a crash mid-action, run it again
    DONE = "done"  # already performed
    FAILED = "failed"  # gave up permanently before
