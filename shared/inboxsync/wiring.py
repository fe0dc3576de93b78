"""Build each function's collaborators once per instance, from the environment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

from inboxsync.auth import OidcVerifier
from inboxsync.config import CommonSettings, GmailSettings, PushSettings, QueueSettings
from inboxsync.logs import configure_logging, get_logger
from inboxsync.receiver import PushReceiver

if TYPE_CHECKING:
    from inboxsync.adapters.cloud_tasks import CloudTasksQueue
    from inboxsync.adapters.firestore import FirestoreStore
    from inboxsync.adapters.gmail import GmailApiConnector

__all__ = [
    "Lazy",
    "PushParts",
    "build_gmail_connector",
    "build_push_receiver",
    "build_queue",
    "push_parts",
    "start_instance",
]

_log = get_logger("inboxsync.wiring")
T = TypeVar("T")


class Lazy(Generic[T]):
    """Build a value on first use, once, even with concurrent requests."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
        return self._value


def start_instance(common: CommonSettings, function: str) -> None:
    """Set up logging for a function instance; say loudly when auth is off."""
    configure_logging(common.log_level)
    if common.local_mode:
        _log.warning(
            "LOCAL MODE: %s requests are NOT authenticated; this must never run"
            " outside the emulators",
            function,
            extra={"local_mode": True},
        )


def build_push_receiver() -> PushReceiver:
    """The push receiver of one `receive_push` instance, from its environment."""
    settings = PushSettings.from_env()
    start_instance(settings.common, "receive_push")
    return push_parts(settings).receiver


@dataclass(frozen=True)
class PushParts:
    store: FirestoreStore
    queue: CloudTasksQueue
    receiver: PushReceiver


def push_parts(settings: PushSettings) -> PushParts:
    """Firestore store, sync queue and push receiver for these settings."""
    from inboxsync.adapters.firestore import FirestoreStore, make_client

    store = FirestoreStore(
        make_client(settings.common), timeout_s=settings.rpc_timeout_s
    )
    queue = build_queue(
        settings.queue, settings.common, timeout_s=settings.rpc_timeout_s
    )
    receiver = PushReceiver(
        verifier=OidcVerifier(settings.oidc) if settings.oidc.enabled else None,
        events=store,
        dead_letters=store,
        queue=queue,
        event_ttl=timedelta(days=settings.event_ttl_days),
        max_body_bytes=settings.max_body_bytes,
        project=settings.common.project,
    )
    return PushParts(store, queue, receiver)


def build_queue(
    queue: QueueSettings, common: CommonSettings, *, timeout_s: float
) -> CloudTasksQueue:
    """The Cloud Tasks queue that sync tasks are created in."""
    from inboxsync.adapters.cloud_tasks import CloudTasksQueue, make_tasks_client

    return CloudTasksQueue(
        make_tasks_client(common.tasks_emulator_host),
        queue_path=queue.queue_path,
        target_url=queue.sync_url,
        service_account=queue.service_account,
        audience=queue.sync_audience,
        timeout_s=timeout_s,
    )


def build_gmail_connector(gmail: GmailSettings) -> GmailApiConnector:
    """The Gmail adapter (the real API, or the sandbox when its URL is set)."""
    from inboxsync.adapters.gmail import GmailApiConnector

    return GmailApiConnector(
        api_url=gmail.api_url,
        scopes=gmail.scopes,
        timeout_s=gmail.timeout_s,
        delegation_account=gmail.delegated_admin,
    )
