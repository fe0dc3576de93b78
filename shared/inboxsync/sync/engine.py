"""The sync engine: bring one mailbox up to date and run each matching action once.

A pass pages through history.list from the stored checkpoint. For each page it
claims the new messages (entity dedup), fetches them in batches in the cheapest
format the rules need, runs the matching actions (action dedup: `started` before,
`done`/`failed` after), and only then moves the checkpoint forward, so a crash
at any point resumes from the last finished page. Without a checkpoint, or when
Gmail no longer has history that old, a bounded full sync lists recent messages
instead and then resets the checkpoint from the profile read before the listing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from inboxsync import ids
from inboxsync.errors import (
    CredentialsRevoked,
    HistoryExpired,
    InboxsyncError,
    PermanentError,
    TransientError,
)
from inboxsync.logs import get_logger
from inboxsync.ports import DeadLetterStore
from inboxsync.sync.actions import Action, ActionCall
from inboxsync.sync.lease import (
    LeaseLost,
    held_by_earlier_attempt,
    lease_owner_for,
    needs_another_pass,
)
from inboxsync.sync.models import (
    STATUS_ACTIVE,
    ActionState,
    GmailMessage,
    HistoryChange,
    Mailbox,
    MessageFormat,
    SyncTask,
)
from inboxsync.sync.ports import (
    ActionLedger,
    GmailConnector,
    MailboxGmail,
    MailboxStore,
    MessageLedger,
)
from inboxsync.sync.quota import DEFAULT_METHOD_UNITS, BudgetedGmail, QuotaBudget
from inboxsync.sync.rules import RuleSet

__all__ = ["EngineConfig", "SyncEngine", "SyncResult", "SyncStats"]

_log = get_logger("inboxsync.sync")
_BATCH_LIMIT = 50  # Gmail advises no more than 50 calls per batch request


@dataclass(frozen=True)
class EngineConfig:
    lease_s: float = 300.0
    full_sync_days: int = 2
    full_sync_max_messages: int = 500
    quota_units_per_minute: int = 15_000
    method_units: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_METHOD_UNITS)
    )
    max_passes: int = 5
    message_ttl_days: int = 30
    action_ttl_days: int = 30
    batch_size: int = _BATCH_LIMIT


@dataclass
class SyncStats:
    """Counters of one task, logged on its INFO line."""

    checkpoint_before: int | None = None
    checkpoint_after: int | None = None
    passes: int = 0
    history_pages: int = 0
    full_syncs: int = 0
    messages_new: int = 0
    messages_duplicate: int = 0
    messages_gone: int = 0
    actions_done: int = 0
    actions_skipped: int = 0
    actions_failed: int = 0
    quota_units: int = 0

    def as_fields(self) -> dict[str, int | None]:
        return asdict(self)


@dataclass(frozen=True)
class SyncResult:
    """How a task ended when no error was raised."""

    outcome: str  # synced | covered | coalesced | unknown_mailbox | mailbox_<status>
    stats: SyncStats


class SyncEngine:
    def __init__(
        self,
        *,
        mailboxes: MailboxStore,
        messages: MessageLedger,
        action_ledger: ActionLedger,
        dead_letters: DeadLetterStore,
        gmail: GmailConnector,
        rules: RuleSet,
        actions: Mapping[str, Action],
        config: EngineConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._mailboxes = mailboxes
        self._messages = messages
        self._ledger = action_ledger
        self._dead_letters = dead_letters
        self._gmail = gmail
        self._rules = rules
        self._actions = actions
        self._config = config or EngineConfig()
        self._clock = clock
        self._format = max(
            [MessageFormat.MINIMAL]
            + [rule.matcher.message_format for rule in rules.rules]
            + [action.message_format for action in actions.values()]
        )
        self._label_triggers = rules.label_triggers()

    @property
    def message_format(self) -> MessageFormat:
        return self._format

    def sync(self, task: SyncTask, stats: SyncStats | None = None) -> SyncResult:
        """Run one task. Raises TransientError (retry) or PermanentError (give up)."""
        stats = stats if stats is not None else SyncStats()
        now = self._clock()
        mailbox = self._mailboxes.get_mailbox(task.mailbox_id)
        if mailbox is None:
            self._dead_letters.put_dead_letter(
                "unknown_mailbox",
                task.mailbox_id,
                _task_payload(task),
                "no mailboxes document for this id: register the mailbox, then replay",
            )
            return SyncResult("unknown_mailbox", stats)
        stats.checkpoint_before = stats.checkpoint_after = mailbox.checkpoint
        if mailbox.status != STATUS_ACTIVE:
            self._mailboxes.note_skipped(task.mailbox_id, now=now)
            return SyncResult(f"mailbox_{mailbox.status}", stats)

        # A notification's historyId is where the mailbox stood when it was sent:
        # if the checkpoint is already there, this task has nothing to add. Not
        # so for a retry of a task that died holding the lease: it must take the
        # lease back and release it, looking at the work left pending meanwhile.
        # Nor while pending work is beyond the checkpoint: the tasks that left it
        # have already finished, trusting a holder that has since given up
        # (transient error, too many passes), so someone must still sync it.
        owner = lease_owner_for(task.task_name, task.retry_count)
        wanted = task.history_id
        covered = (
            wanted is not None
            and mailbox.checkpoint is not None
            and wanted <= mailbox.checkpoint
            and not needs_another_pass(mailbox)
        )
        if covered and not held_by_earlier_attempt(mailbox.lease_owner, owner):
            return SyncResult("covered", stats)
        if wanted is None:
            wanted = (mailbox.checkpoint or 0) + 1

        leased = self._mailboxes.acquire_lease(
            task.mailbox_id, owner, wanted, now=now, lease_s=self._config.lease_s
        )
        if leased is None:
            return SyncResult("coalesced", stats)
        return self._run_leased(leased, owner, now, stats)

    def _run_leased(
        self, mailbox: Mailbox, owner: str, leased_at: datetime, stats: SyncStats
    ) -> SyncResult:
        budget = QuotaBudget(
            units_per_minute=self._config.quota_units_per_minute,
            method_units=self._config.method_units,
            state=mailbox.quota,
            clock=lambda: self._clock().timestamp(),
        )
        gmail = BudgetedGmail(self._gmail.for_mailbox(mailbox), budget)
        lease = _LeaseKeeper(
            self._mailboxes,
            mailbox.mailbox_id,
            owner,
            self._config.lease_s,
            self._clock,
            leased_at,
        )
        stats.checkpoint_before = stats.checkpoint_after = mailbox.checkpoint
        current: Mailbox | None = mailbox
        try:
            while current is not None and stats.passes < self._config.max_passes:
                stats.passes += 1
                self._pass(current, gmail, budget, lease, stats)
                current = self._mailboxes.release_lease(
                    mailbox.mailbox_id,
                    owner,
                    quota=budget.state,
                    now=self._clock(),
                    lease_s=self._config.lease_s,
                )
                lease.extended()
        except InboxsyncError as exc:
            stats.quota_units = budget.spent_total
            self._release_after_error(mailbox.mailbox_id, owner, budget)
            if isinstance(exc, PermanentError):
                self._mailboxes.mark_error(
                    mailbox.mailbox_id,
                    f"{type(exc).__name__}: {exc}",
                    now=self._clock(),
                )
            raise
        stats.quota_units = budget.spent_total
        if current is not None:
            # Notifications kept arriving: hand the rest to a retry of this task
            # instead of holding one request open for ever.
            self._release_after_error(mailbox.mailbox_id, owner, budget)
            raise TransientError(
                f"still behind after {stats.passes} passes", retry_after_s=1.0
            )
        return SyncResult("synced", stats)

    def _release_after_error(
        self, mailbox_id: str, owner: str, budget: QuotaBudget
    ) -> None:
        try:
            self._mailboxes.release_lease(
                mailbox_id,
                owner,
                quota=budget.state,
                now=self._clock(),
                lease_s=self._config.lease_s,
                force=True,
            )
        except TransientError:
            # The lease runs out by itself; a retry of this task takes it back at once.
            _log.warning("could not release the mailbox lease", exc_info=True)

    def _pass(
        self,
        mailbox: Mailbox,
        gmail: MailboxGmail,
        budget: QuotaBudget,
        lease: _LeaseKeeper,
        stats: SyncStats,
    ) -> None:
        if mailbox.checkpoint is None:
            self._full_sync(mailbox, gmail, budget, lease, stats)
            return
        try:
            self._history_sync(mailbox, mailbox.checkpoint, gmail, budget, lease, stats)
        except HistoryExpired:
            _log.warning(
                "checkpoint history expired: running a bounded full sync",
                extra={"checkpoint": stats.checkpoint_after},
            )
            self._full_sync(mailbox, gmail, budget, lease, stats)

    def _history_sync(
        self,
        mailbox: Mailbox,
        start: int,
        gmail: MailboxGmail,
        budget: QuotaBudget,
        lease: _LeaseKeeper,
        stats: SyncStats,
    ) -> None:
        page_token: str | None = None
        while True:
            page = gmail.list_history(start, page_token)
            stats.history_pages += 1
            self._process_changes(mailbox, gmail, page.changes, lease, stats)

            # Mid-way, only the last record of a finished page is a safe restart
            # point; the response's historyId is the end of the whole listing.
            if page.next_page_token:
                page_token = page.next_page_token
                if page.last_record_id is not None:
                    self._advance(mailbox, page.last_record_id, budget, lease, stats)
                continue
            self._advance(mailbox, page.response_history_id, budget, lease, stats)
            return

    def _full_sync(
        self,
        mailbox: Mailbox,
        gmail: MailboxGmail,
        budget: QuotaBudget,
        lease: _LeaseKeeper,
        stats: SyncStats,
    ) -> None:
        stats.full_syncs += 1
        # Read the profile first: anything arriving during the listing is then
        # after the new checkpoint and comes through history next time.
        profile_history_id = gmail.get_profile_history_id()
        query = f"newer_than:{self._config.full_sync_days}d"
        limit = self._config.full_sync_max_messages
        listed = 0
        page_token: str | None = None
        while listed < limit:
            page = gmail.list_messages(query, page_token, min(500, limit - listed))
            chosen = page.message_ids[: limit - listed]
            listed += len(chosen)
            changes = [HistoryChange(message_id, "added") for message_id in chosen]
            self._process_changes(mailbox, gmail, changes, lease, stats)
            if not page.next_page_token:
                break
            page_token = page.next_page_token
        else:
            _log.warning(
                "full sync stopped at INBOXSYNC_FULL_SYNC_MAX_MESSAGES",
                extra={"listed": listed},
            )
        self._advance(mailbox, profile_history_id, budget, lease, stats)

    def _advance(
        self,
        mailbox: Mailbox,
        history_id: int,
        budget: QuotaBudget,
        lease: _LeaseKeeper,
        stats: SyncStats,
    ) -> None:
        if stats.checkpoint_after is not None and history_id <= stats.checkpoint_after:
            return
        self._mailboxes.advance_checkpoint(
            mailbox.mailbox_id,
            history_id,
            quota=budget.state,
            now=self._clock(),
            lease_s=self._config.lease_s,
        )
        lease.extended()  # the checkpoint write also pushes the lease expiry out
        stats.checkpoint_after = history_id

    def _process_changes(
        self,
        mailbox: Mailbox,
        gmail: MailboxGmail,
        changes: Iterable[HistoryChange],
        lease: _LeaseKeeper,
        stats: SyncStats,
    ) -> None:
        added: dict[str, None] = {}
        relabelled: dict[str, frozenset[str]] = {}
        for change in changes:
            if change.kind == "added":
                added[change.message_id] = None
            elif change.added_labels & self._label_triggers:
                previous = relabelled.get(change.message_id, frozenset())
                relabelled[change.message_id] = previous | change.added_labels

        expires_at = self._clock() + timedelta(days=self._config.message_ttl_days)
        claimed: list[str] = []
        for message_id in added:
            if self._messages.claim_message(
                mailbox.mailbox_id, message_id, expires_at=expires_at
            ):
                claimed.append(message_id)
            else:
                stats.messages_duplicate += 1

        # A claimed message runs every rule on its current labels. One finished
        # before (a listing repeated after a crash) still owes its label rules.
        for message_id in claimed:
            relabelled.pop(message_id, None)

        # A label added later can make a label rule match a message seen before;
        # only the rules on those labels run, and action dedup keeps them once.
        wanted = claimed + list(relabelled)
        for chunk in _chunks(wanted, min(self._config.batch_size, _BATCH_LIMIT)):
            lease.keep()
            fetched = gmail.get_messages(chunk, self._format)
            for message_id in chunk:
                # Claimed-but-unfinished messages are processed again by whoever
                # holds the lease: acting without it would repeat actions.
                lease.keep()
                message = fetched.get(message_id)
                is_new = message_id not in relabelled
                if message is None:
                    stats.messages_gone += 1
                    if is_new:
                        self._messages.finish_message(
                            mailbox.mailbox_id, message_id, "gone"
                        )
                    continue
                if is_new:
                    stats.messages_new += 1
                    self._run_actions(mailbox, gmail, message, None, stats)
                    self._messages.finish_message(
                        mailbox.mailbox_id, message_id, "done"
                    )
                else:
                    self._run_actions(
                        mailbox, gmail, message, relabelled[message_id], stats
                    )

    def _run_actions(
        self,
        mailbox: Mailbox,
        gmail: MailboxGmail,
        message: GmailMessage,
        only_labels: frozenset[str] | None,
        stats: SyncStats,
    ) -> None:
        expires_at = self._clock() + timedelta(days=self._config.action_ttl_days)
        for rule, action_name in self._rules.actions_for(message):
            if only_labels is not None and not rule.matcher.labels & only_labels:
                continue
            action = self._actions[action_name]
            record_id = ids.action_id(
                mailbox.mailbox_id, message.message_id, action_name
            )
            fields = {
                "mailboxId": mailbox.mailbox_id,
                "messageId": message.message_id,
                "action": action_name,
                "rule": rule.name,
            }
            state = self._ledger.begin_action(record_id, fields, expires_at=expires_at)
            if state in (ActionState.DONE, ActionState.FAILED):
                stats.actions_skipped += 1
                continue

            call = ActionCall(
                record_id=record_id,
                mailbox_id=mailbox.mailbox_id,
                mailbox_address=mailbox.address,
                rule_name=rule.name,
                message=message,
                gmail=gmail,
            )
            try:
                result = action.perform(call)
            except (TransientError, CredentialsRevoked):
                raise  # the record stays `started`: the retry performs it again
            except Exception as exc:  # a permanent failure, or a bug in a plugin
                error = f"{type(exc).__name__}: {exc}"
                _log.error(
                    "action failed permanently",
                    exc_info=not isinstance(exc, PermanentError),
                    extra={"action": action_name, "action_id": record_id},
                )
                self._ledger.fail_action(record_id, error)
                self._dead_letters.put_dead_letter("action", record_id, fields, error)
                stats.actions_failed += 1
                continue
            self._ledger.finish_action(record_id, result)
            stats.actions_done += 1


class _LeaseKeeper:
    """Renews the mailbox lease while a pass works, and stops the pass if it is lost.

    A pass may outlast the lease (a slow action target, a long page); once it
    runs out another task may take the mailbox and process the same messages.
    Renewing every third of the lease keeps that from happening unnoticed.
    """

    def __init__(
        self,
        store: MailboxStore,
        mailbox_id: str,
        owner: str,
        lease_s: float,
        clock: Callable[[], datetime],
        renewed_at: datetime,
    ) -> None:
        self._store = store
        self._mailbox_id = mailbox_id
        self._owner = owner
        self._lease_s = lease_s
        self._clock = clock
        self._renewed_at = renewed_at

    def extended(self) -> None:
        """The store pushed the expiry out as part of another write."""
        self._renewed_at = self._clock()

    def keep(self) -> None:
        now = self._clock()
        if (now - self._renewed_at).total_seconds() < self._lease_s / 3:
            return
        if not self._store.renew_lease(
            self._mailbox_id, self._owner, now=now, lease_s=self._lease_s
        ):
            raise LeaseLost("the mailbox lease ran out and another task holds it now")
        self._renewed_at = now


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _task_payload(task: SyncTask) -> dict[str, object]:
    return {
        "event_id": task.event_id,
        "mailbox_id": task.mailbox_id,
        "history_id": task.history_id,
        "publish_time": task.publish_time,
    }


def elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
