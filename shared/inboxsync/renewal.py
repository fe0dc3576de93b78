"""The scheduled watch renewal (`renew_watches`): settings and request handler.

Cloud Scheduler calls the function once a day with an OIDC token of its own
invoker account. Each call renews the Gmail watch of every active mailbox and
queues one catch-up sync per mailbox (see `inboxsync.onboarding`), so a watch
never lapses and mail whose notification Gmail dropped is picked up within a
schedule interval.

Answers: 204 when every mailbox was renewed, or when the only failures are
permanent (those mailboxes are already marked `error`, and another run cannot
help them); 503 with Retry-After when some mailbox, Firestore or Cloud Tasks
failed transiently, so that Cloud Scheduler retries the whole run. A rerun is
cheap: watching again is harmless and catch-up tasks are named per history id.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inboxsync.auth import OidcVerifier, TokenVerifier
from inboxsync.config import (
    CommonSettings,
    EnvReader,
    GmailSettings,
    OidcSettings,
    QueueSettings,
)
from inboxsync.errors import ConfigError, TransientError
from inboxsync.handling import IncomingRequest, Outcome, check_caller, log_outcome
from inboxsync.logs import get_logger
from inboxsync.onboarding import (
    DEFAULT_LABELS,
    MailboxDirectory,
    RenewReport,
    WatchConnector,
    renew_watches,
)
from inboxsync.ports import TaskQueue
from inboxsync.wiring import build_gmail_connector, build_queue, start_instance

__all__ = ["RenewSettings", "WatchRenewer", "build_watch_renewer"]

_log = get_logger("inboxsync.renew_watches")

# Cloud Scheduler sends an empty body (or a small one); nothing in it is read.
_MAX_BODY_BYTES = 4096
# Cloud Scheduler retries on its own backoff; this is only the hint we give.
_RETRY_AFTER_S = 60.0
_TOPIC = re.compile(r"^projects/[^/\s]+/topics/[^/\s]+$")
_LEVELS = {
    "renewed": logging.INFO,
    "failed": logging.ERROR,
    "retry_later": logging.WARNING,
    "unavailable": logging.ERROR,
}


@dataclass(frozen=True)
class RenewSettings:
    """Settings of `renew_watches`, read once per instance."""

    common: CommonSettings
    oidc: OidcSettings
    topic: str
    label_ids: tuple[str, ...]
    gmail: GmailSettings
    queue: QueueSettings
    rpc_timeout_s: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RenewSettings:
        env = EnvReader(environ)
        common = CommonSettings.from_env(env)
        oidc = OidcSettings.from_env(
            env, prefix="INBOXSYNC_RENEW", local_mode=common.local_mode
        )
        topic = env.text("INBOXSYNC_GMAIL_TOPIC")
        if not _TOPIC.match(topic):
            raise ConfigError(
                "INBOXSYNC_GMAIL_TOPIC must be the full topic name that users.watch"
                f" takes, projects/P/topics/T; got {topic!r}"
            )
        return cls(
            common=common,
            oidc=oidc,
            topic=topic,
            label_ids=env.items("INBOXSYNC_WATCH_LABELS", DEFAULT_LABELS),
            gmail=GmailSettings.from_env(env),
            queue=QueueSettings.from_env(env, common),
            rpc_timeout_s=env.number("INBOXSYNC_RPC_TIMEOUT_S", 10.0, minimum=0.1),
        )


class WatchRenewer:
    """Handles one scheduled call: check the caller, renew, report."""

    def __init__(
        self,
        *,
        verifier: TokenVerifier | None,
        directory: MailboxDirectory,
        connector: WatchConnector,
        queue: TaskQueue,
        topic: str,
        label_ids: Sequence[str] = DEFAULT_LABELS,
        project: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._verifier = verifier
        self._directory = directory
        self._connector = connector
        self._queue = queue
        self._topic = topic
        self._label_ids = tuple(label_ids)
        self._clock = clock
        self.max_body_bytes = _MAX_BODY_BYTES
        self.project = project

    def handle(self, request: IncomingRequest) -> Outcome:
        """Handle one scheduled call and write its one log line."""
        started = time.perf_counter()
        fields: dict[str, Any] = {}
        outcome = self._handle(request, fields)
        fields["detail"] = outcome.detail
        level = _LEVELS.get(outcome.outcome, logging.WARNING)
        log_outcome(
            _log, "watch renewal", outcome, started=started, level=level, fields=fields
        )
        return outcome

    def _handle(self, request: IncomingRequest, fields: dict[str, Any]) -> Outcome:
        refused = check_caller(self._verifier, request)
        if refused is not None:
            return refused

        try:
            report = renew_watches(
                self._directory,
                self._connector,
                self._queue,
                topic=self._topic,
                label_ids=self._label_ids,
                now=self._clock(),
            )
        except TransientError as exc:
            # Listing the mailboxes, or recording a permanent failure, failed.
            return Outcome(
                503, "unavailable", str(exc), exc.retry_after_s or _RETRY_AFTER_S
            )

        fields.update(_report_fields(report))
        summary = (
            f"{len(report.renewed)} renewed, {len(report.skipped)} skipped,"
            f" {len(report.failed)} failed, {len(report.retry_later)} to retry"
        )
        if report.retry_later:
            # Already renewed mailboxes are renewed again on the retry: a second
            # watch is harmless and their catch-up task names repeat.
            return Outcome(503, "retry_later", summary, _RETRY_AFTER_S)
        if report.failed:
            # renew_watches marked these mailboxes `error`; a retry cannot help.
            return Outcome(204, "failed", summary)
        return Outcome(204, "renewed", summary)


def _report_fields(report: RenewReport) -> dict[str, Any]:
    """Counts, plus the mailbox ids (hashes) and errors of the failures."""
    fields: dict[str, Any] = {
        "renewed": len(report.renewed),
        "skipped": len(report.skipped),
        "failed": len(report.failed),
        "retry_later": len(report.retry_later),
    }
    if report.failed:
        fields["failed_mailboxes"] = dict(report.failed)
    if report.retry_later:
        fields["retry_mailboxes"] = dict(report.retry_later)
    return fields


def build_watch_renewer(environ: Mapping[str, str] | None = None) -> WatchRenewer:
    """The handler of one `renew_watches` instance, from its environment."""
    # Adapters import the Google SDKs; keep that off module import time.
    from inboxsync.adapters.firestore import make_client
    from inboxsync.sync.firestore_store import SyncFirestore

    settings = RenewSettings.from_env(environ)
    start_instance(settings.common, "renew_watches")
    directory = SyncFirestore(
        make_client(settings.common), timeout_s=settings.rpc_timeout_s
    )
    return WatchRenewer(
        verifier=OidcVerifier(settings.oidc) if settings.oidc.enabled else None,
        directory=directory,
        connector=build_gmail_connector(settings.gmail),
        queue=build_queue(
            settings.queue, settings.common, timeout_s=settings.rpc_timeout_s
        ),
        topic=settings.topic,
        label_ids=settings.label_ids,
        project=settings.common.project,
    )
