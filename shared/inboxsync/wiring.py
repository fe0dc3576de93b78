"""Build each function's collaborators once per instance, from the environment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

from inboxsync.auth import OidcVerifier
from inboxsync.config import PushSettings
from inboxsync.logs import configure_logging, get_logger
from inboxsync.receiver import PushReceiver

if TYPE_CHECKING:
    from inboxsync.adapters.cloud_tasks import CloudTasksQueue
    from inboxsync.adapters.firestore import FirestoreStore

__all__ = ["Lazy", "PushParts", "build_push_receiver", "push_parts"]

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

    def reset(self) -> None:
        with self._lock:
            self._value = None


def build_push_receiver() -> PushReceiver:
    """The push receiver of one `receive_push` instance, from its environment."""
    settings = PushSettings.from_env()
    configure_logging(settings.common.log_level)
    if settings.common.local_mode:
        _log.warning(
            "LOCAL MODE: push requests are NOT authenticated; this must never run"
            " outside the emulators",
            extra={"local_mode": True},
        )
    return push_parts(settings).receiver


@dataclass(frozen=True)
class PushParts:
    store: FirestoreStore
    queue: CloudTasksQueue
    receiver: PushReceiver


def push_parts(settings: PushSettings) -> PushParts:
    """Firestore store, sync queue and push receiver for these settings."""
    # Adapters import the Google SDKs; keep that off module import time.
    from inboxsync.adapters.cloud_tasks import CloudTasksQueue, make_tasks_client
    from inboxsync.adapters.firestore import FirestoreStore, make_client

    store = FirestoreStore(
        make_client(settings.common), timeout_s=settings.rpc_timeout_s
    )
    queue = CloudTasksQueue(
        make_tasks_client(settings.common.tasks_emulator_host),
        queue_path=settings.queue_path,
        target_url=settings.sync_url,
        service_account=settings.tasks_service_account,
        audience=settings.sync_audience,
        timeout_s=settings.rpc_timeout_s,
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
