"""renew_watches driven over HTTP against the Firestore and Cloud Tasks emulators.

Mailboxes live in an in-process Gmail sandbox and are registered the way the
CLI does it; the function reaches the sandbox over HTTP like real Gmail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import functions_framework
import pytest
from google.cloud import tasks_v2

from inboxsync import ids
from inboxsync.adapters.gmail import GmailApiConnector
from inboxsync.local.sandbox import (
    FakeClock,
    RecordingPublisher,
    SandboxAdmin,
    SandboxServer,
    SandboxState,
)
from inboxsync.logs import JsonFormatter
from inboxsync.onboarding import add_mailbox
from inboxsync.sync.firestore_store import SyncFirestore

if TYPE_CHECKING:
    from conftest import PausedQueue

pytestmark = pytest.mark.emulators

SOURCE = Path(__file__).resolve().parents[2] / "functions" / "renew_watches" / "main.py"
AUDIENCE = "https://renew.example.test/renew_watches"
SCHEDULER = "sched-invoker@proj.iam.gserviceaccount.com"
TOPIC = "projects/proj/topics/gmail"
SYNC_URL = "http://127.0.0.1:9/run_sync"
SCOPES = ["https://www.googleapis.com/auth/gmail.modify"]
ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    state = SandboxState(clock=FakeClock(start_s=1_750_000_000.0), seed=7)
    server = SandboxServer(state, publisher=RecordingPublisher()).start()
    yield server
    server.stop()


class RenewHarness:
    def __init__(
        self,
        project: str,
        tasks_host: str,
        issuer: Any,
        firestore_client: Any,
        sandbox: SandboxServer,
        queue: PausedQueue,
    ) -> None:
        self.project = project
        self.tasks_host = tasks_host
        self.issuer = issuer
        self.db = firestore_client
        self.sandbox_url = sandbox.url
        self.admin = SandboxAdmin(sandbox.url)
        self.store = SyncFirestore(firestore_client)
        self.connector = GmailApiConnector(api_url=sandbox.url, scopes=SCOPES)
        self.queue = queue

    def register(self, address: str) -> None:
        """Create the sandbox mailbox and onboard it as `inboxsync mailboxes add`."""
        self.admin.create_mailbox(address)
        add_mailbox(self.store, self.connector, address, topic=TOPIC, auth="none")

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "INBOXSYNC_PROJECT": self.project,
            "INBOXSYNC_RENEW_AUDIENCE": AUDIENCE,
            "INBOXSYNC_RENEW_ALLOWED_EMAILS": SCHEDULER,
            "INBOXSYNC_OIDC_CERTS_URL": self.issuer.certs_url,
            "INBOXSYNC_GMAIL_TOPIC": TOPIC,
            "INBOXSYNC_GMAIL_API_URL": self.sandbox_url,
            "INBOXSYNC_TASKS_LOCATION": self.queue.location,
            "INBOXSYNC_TASKS_QUEUE": self.queue.name,
            "INBOXSYNC_SYNC_URL": SYNC_URL,
            "INBOXSYNC_TASKS_SERVICE_ACCOUNT": "tasks-invoker@proj.iam.gserviceaccount.com",
            "CLOUD_TASKS_EMULATOR_HOST": self.tasks_host,
        }
        env.update(overrides)
        return env

    def token(self, **claims: Any) -> str:
        return str(self.issuer.token(**{"aud": AUDIENCE, "email": SCHEDULER, **claims}))

    def queued(self) -> list[tasks_v2.Task]:
        return self.queue.tasks()

    def queued_mailboxes(self) -> list[str]:
        return sorted(
            json.loads(task.http_request.body)["mailbox_id"] for task in self.queued()
        )

    def mailbox(self, address: str) -> dict[str, Any]:
        snapshot = self.db.collection("mailboxes").document(ids.mailbox_id(address))
        data: dict[str, Any] = snapshot.get().to_dict()
        return data


@pytest.fixture
def harness(  # type: ignore[no-untyped-def]
    project_id, tasks_host, oidc_issuer, firestore_client, sandbox, paused_queue
) -> Iterator[RenewHarness]:
    harness = RenewHarness(
        project_id, tasks_host, oidc_issuer, firestore_client, sandbox, paused_queue
    )
    yield harness
    harness.admin.close()


Client = Callable[..., Any]


@pytest.fixture
def make_client(
    harness: RenewHarness, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Client]:
    """Build a fresh function instance (new module, new clients) for an environment."""

    def build(**overrides: str) -> Client:
        for key, value in harness.env(**overrides).items():
            monkeypatch.setenv(key, value)
        app = functions_framework.create_app(target="renew_watches", source=str(SOURCE))
        client = app.test_client()

        def post(token: str | None = "valid") -> Any:
            headers = {}
            if token == "valid":
                token = harness.token()
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            return client.post("/", data=b"", headers=headers)

        return post

    return build


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def renewal_log() -> Iterator[list[dict[str, Any]]]:
    """The JSON lines the handler writes, whatever the root logger does."""
    logger = logging.getLogger("inboxsync.renew_watches")
    handler = _Lines()
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_renews_every_active_mailbox_and_queues_one_catch_up_each(
    harness: RenewHarness, make_client, renewal_log
) -> None:  # type: ignore[no-untyped-def]
    for address in (ALICE, BOB):
        harness.register(address)
    before = {a: harness.mailbox(a)["watchExpiresAt"] for a in (ALICE, BOB)}
    harness.admin.advance_clock(timedelta(days=2).total_seconds())
    post = make_client()

    response = post()

    assert response.status_code == 204
    for address in (ALICE, BOB):
        after = harness.mailbox(address)["watchExpiresAt"]
        assert after - before[address] >= timedelta(days=2)
    assert harness.queued_mailboxes() == sorted(ids.mailbox_id(a) for a in (ALICE, BOB))
    (line,) = renewal_log
    assert line["severity"] == "INFO"
    assert (line["outcome"], line["renewed"], line["failed"]) == ("renewed", 2, 0)
    assert "alice" not in json.dumps(line)


def test_catch_up_task_targets_run_sync_with_its_token(
    harness: RenewHarness, make_client
) -> None:  # type: ignore[no-untyped-def]
    harness.register(ALICE)
    history_id = int(harness.admin.get_mailbox(ALICE)["history_id"])
    post = make_client()

    post()

    (task,) = harness.queued()
    body = json.loads(task.http_request.body)
    assert body["mailbox_id"] == ids.mailbox_id(ALICE)
    assert body["history_id"] == history_id
    assert body["event_id"] is None
    assert task.http_request.url == SYNC_URL
    assert task.http_request.oidc_token.service_account_email.startswith(
        "tasks-invoker@"
    )
    assert task.http_request.oidc_token.audience == SYNC_URL


def test_a_second_run_queues_no_duplicate_catch_up(
    harness: RenewHarness, make_client
) -> None:  # type: ignore[no-untyped-def]
    for address in (ALICE, BOB):
        harness.register(address)
    post = make_client()

    first = post()
    second = post()

    assert (first.status_code, second.status_code) == (204, 204)
    assert len(harness.queued()) == 2


def test_disabled_mailbox_is_skipped(
    harness: RenewHarness, make_client, renewal_log
) -> None:  # type: ignore[no-untyped-def]
    for address in (ALICE, CAROL):
        harness.register(address)
    harness.store.upsert_mailbox(ids.mailbox_id(CAROL), {"status": "disabled"})
    carol_before = harness.mailbox(CAROL)["watchRenewedAt"]
    post = make_client()

    response = post()

    assert response.status_code == 204
    assert harness.queued_mailboxes() == [ids.mailbox_id(ALICE)]
    assert harness.mailbox(CAROL)["watchRenewedAt"] == carol_before
    assert harness.mailbox(CAROL)["status"] == "disabled"
    assert (renewal_log[-1]["renewed"], renewal_log[-1]["skipped"]) == (1, 1)


def test_gmail_unavailable_answers_503_and_the_retry_completes(
    harness: RenewHarness, make_client, renewal_log
) -> None:  # type: ignore[no-untyped-def]
    for address in (ALICE, BOB):
        harness.register(address)
    harness.admin.inject_fault("watch", status=503, count=1, user=BOB)
    post = make_client()

    failed = post()

    assert failed.status_code == 503
    assert int(failed.headers["Retry-After"]) >= 1
    assert harness.queued_mailboxes() == [ids.mailbox_id(ALICE)]
    assert harness.mailbox(BOB)["status"] == "active"
    assert renewal_log[-1]["severity"] == "WARNING"
    assert list(renewal_log[-1]["retry_mailboxes"]) == [ids.mailbox_id(BOB)]

    retried = post()

    assert retried.status_code == 204
    assert harness.queued_mailboxes() == sorted(ids.mailbox_id(a) for a in (ALICE, BOB))


def test_revoked_mailbox_is_marked_error_and_the_run_succeeds(
    harness: RenewHarness, make_client, renewal_log
) -> None:  # type: ignore[no-untyped-def]
    for address in (ALICE, BOB):
        harness.register(address)
    harness.admin.inject_fault("watch", status=401, count=5, user=BOB)
    post = make_client()

    response = post()

    assert response.status_code == 204
    bob = harness.mailbox(BOB)
    assert bob["status"] == "error"
    assert bob["lastError"].startswith("watch:")
    assert harness.queued_mailboxes() == [ids.mailbox_id(ALICE)]
    (line,) = renewal_log
    assert line["severity"] == "ERROR"
    assert (line["outcome"], line["renewed"], line["failed"]) == ("failed", 1, 1)
    assert list(line["failed_mailboxes"]) == [ids.mailbox_id(BOB)]


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (None, 401),
        ("not-a-jwt", 401),
        ("wrong audience", 401),
        ("wrong email", 403),
    ],
)
def test_token_checks(
    harness: RenewHarness, make_client, token: str | None, status: int
) -> None:  # type: ignore[no-untyped-def]
    harness.register(ALICE)
    renewed_at = harness.mailbox(ALICE)["watchRenewedAt"]
    post = make_client()
    if token == "wrong audience":
        token = harness.token(aud="https://elsewhere.test")
    elif token == "wrong email":
        token = harness.token(email="push-invoker@proj.iam.gserviceaccount.com")

    response = post(token=token)

    assert response.status_code == status
    assert harness.queued() == []
    assert harness.mailbox(ALICE)["watchRenewedAt"] == renewed_at


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("", b"INBOXSYNC_GMAIL_TOPIC is required"),
        ("gmail", b"INBOXSYNC_GMAIL_TOPIC must be the full topic name"),
    ],
)
def test_missing_or_bad_topic_is_named_in_a_500(
    harness: RenewHarness, make_client, topic: str, message: bytes
) -> None:  # type: ignore[no-untyped-def]
    harness.register(ALICE)
    post = make_client(INBOXSYNC_GMAIL_TOPIC=topic)

    response = post()

    assert response.status_code == 500
    assert message in response.data
    assert harness.queued() == []


def test_get_is_rejected(make_client) -> None:  # type: ignore[no-untyped-def]
    make_client()
    app = functions_framework.create_app(target="renew_watches", source=str(SOURCE))

    assert app.test_client().get("/").status_code == 405
