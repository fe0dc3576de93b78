"""Adding mailboxes and keeping their Gmail watches alive.

`add_mailbox` registers a mailbox at its current history id, then starts its
watch, in that order: a watch notifies at once, and the sync worker must know
the mailbox by then. `renew_watches` is meant to run at least daily (Gmail
drops a watch after 7 days): it renews every active mailbox's watch and
enqueues one catch-up sync per mailbox, which also picks up mail whose
notification Gmail dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from inboxsync import ids
from inboxsync.errors import PermanentError, TransientError
from inboxsync.ports import TaskQueue
from inboxsync.sync.models import STATUS_ACTIVE, Mailbox
from inboxsync.sync.registration import MailboxRegistry, register_mailbox

__all__ = ["RenewReport", "WatchedMailbox", "add_mailbox", "renew_watches"]

DEFAULT_LABELS = ("INBOX",)


class WatchingGmail(Protocol):
    def get_profile_history_id(self) -> int: ...

    def watch(self, topic: str, label_ids: Sequence[str]) -> tuple[int, int]: ...


class WatchConnector(Protocol):
    def for_mailbox(self, mailbox: Mailbox) -> WatchingGmail: ...


class MailboxDirectory(MailboxRegistry, Protocol):
    def list_mailboxes(self) -> list[Mailbox]: ...

    def mark_error(self, mailbox_id: str, error: str, *, now: datetime) -> None: ...


@dataclass(frozen=True)
class WatchedMailbox:
    mailbox_id: str
    history_id: int
    watch_expires_at: datetime


def _watch_fields(expiration_ms: int, now: datetime) -> dict[str, Any]:
    return {
        "watchExpiresAt": datetime.fromtimestamp(expiration_ms / 1000, UTC),
        "watchRenewedAt": now,
    }


def add_mailbox(
    directory: MailboxRegistry,
    connector: WatchConnector,
    address: str,
    *,
    topic: str,
    auth: str = "delegated",
    oauth_secret: str | None = None,
    label_ids: Sequence[str] = DEFAULT_LABELS,
    now: datetime | None = None,
) -> WatchedMailbox:
    """Register the mailbox from its current history id and start its watch."""
    now = now or datetime.now(UTC)
    mailbox = Mailbox(
        ids.mailbox_id(address),
        address.strip().lower(),
        auth=auth,
        oauth_secret=oauth_secret,
    )
    gmail = connector.for_mailbox(mailbox)
    start = gmail.get_profile_history_id()
    mailbox_id = register_mailbox(
        directory,
        address,
        auth=auth,
        oauth_secret=oauth_secret,
        history_id=start,
        now=now,
    )
    history_id, expiration_ms = gmail.watch(topic, label_ids)
    fields = _watch_fields(expiration_ms, now)
    directory.upsert_mailbox(mailbox_id, fields)
    return WatchedMailbox(mailbox_id, history_id, fields["watchExpiresAt"])


@dataclass
class RenewReport:
    renewed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # mailbox id -> error
    retry_later: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def renew_watches(
    directory: MailboxDirectory,
    connector: WatchConnector,
    queue: TaskQueue,
    *,
    topic: str,
    label_ids: Sequence[str] = DEFAULT_LABELS,
    now: datetime | None = None,
) -> RenewReport:
    """Renew every active mailbox's watch and enqueue a catch-up sync for it."""
    now = now or datetime.now(UTC)
    report = RenewReport()
    for mailbox in directory.list_mailboxes():
        if mailbox.status != STATUS_ACTIVE:
            report.skipped.append(mailbox.mailbox_id)
            continue
        try:
            history_id, expiration_ms = connector.for_mailbox(mailbox).watch(
                topic, label_ids
            )
            directory.upsert_mailbox(
                mailbox.mailbox_id, _watch_fields(expiration_ms, now)
            )
            # Named per (mailbox, history id): running the renewal twice in a
            # row queues one catch-up, not two.
            catch_up = ids.stable_hash("catch-up", mailbox.mailbox_id, str(history_id))
            queue.enqueue(
                f"catchup-{catch_up}",
                {
                    "event_id": None,
                    "mailbox_id": mailbox.mailbox_id,
                    "history_id": history_id,
                    "publish_time": None,
                },
            )
        except PermanentError as exc:
            directory.mark_error(mailbox.mailbox_id, f"watch: {exc}", now=now)
            report.failed[mailbox.mailbox_id] = str(exc)
        except TransientError as exc:
            report.retry_later[mailbox.mailbox_id] = str(exc)
        else:
            report.renewed.append(mailbox.mailbox_id)
    return report
