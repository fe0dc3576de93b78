"""receive_push driven over HTTP against the real Firestore and Cloud Tasks emulators."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import functions_framework
import pytest

from inboxsync import ids
from inboxsync.adapters.firestore import DEAD_LETTERS, PUSH_EVENTS

if TYPE_CHECKING:
    from conftest import PausedQueue

pytestmark = pytest.mark.emulators

SOURCE = Path(__file__).resolve().parents[2] / "functions" / "receive_push" / "main.py"
AUDIENCE = "https://push.example.test/receive_push"
SUBSCRIPTION = "projects/p/subscriptions/gmail-push"
CLOSED_PORT_HOST = "127.0.0.1:9"  # discard port: nothing listens there


def envelope(
    message_id: str = "pubsub-1",
    address: str = "alice@example.com",
    history_id: int = 1000,
    data: str | None = None,
) -> bytes:
    if data is None:
        payload = json.dumps({"emailAddress": address, "historyId": history_id})
        data = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return json.dumps(
        {
            "message": {
                "data": data,
                "messageId": message_id,
                "publishTime": "2026-12-03T10:00:00Z",
            },
            "subscription": SUBSCRIPTION,
        }
    ).encode()


class PushHarness:
    def __init__(
        self,
        project: str,
        tasks_host: str,
        issuer: Any,
        firestore_client: Any,
        queue: PausedQueue,
    ):
        self.project = project
        self.tasks_host = tasks_host
        self.issuer = issuer
        self.db = firestore_client
        self.queue = queue

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "INBOXSYNC_PROJECT": self.project,
            "INBOXSYNC_PUSH_AUDIENCE": AUDIENCE,
            "INBOXSYNC_PUSH_ALLOWED_EMAILS": "push-invoker@proj.iam.gserviceaccount.com",
            "INBOXSYNC_OIDC_CERTS_URL": self.issuer.certs_url,
            "INBOXSYNC_TASKS_LOCATION": self.queue.location,
            "INBOXSYNC_TASKS_QUEUE": self.queue.name,
            "INBOXSYNC_SYNC_URL": "http://127.0.0.1:9/run_sync",
            "INBOXSYNC_TASKS_SERVICE_ACCOUNT": "tasks-invoker@proj.iam.gserviceaccount.com",
            "CLOUD_TASKS_EMULATOR_HOST": self.tasks_host,
            "INBOXSYNC_RPC_TIMEOUT_S": "5",
        }
        env.update(overrides)
        return env

    def task_names(self) -> list[str]:
        return self.queue.task_names()

    def marker(self, message_id: str) -> dict[str, Any] | None:
        doc = self.db.collection(PUSH_EVENTS).document(
            ids.push_event_id(SUBSCRIPTION, message_id)
        )
        snapshot = doc.get()
        return snapshot.to_dict() if snapshot.exists else None

    def dead_letters(self) -> list[dict[str, Any]]:
        return [d.to_dict() for d in self.db.collection(DEAD_LETTERS).stream()]


@pytest.fixture
def harness(
    project_id, tasks_host, oidc_issuer, firestore_client, paused_queue
) -> PushHarness:  # type: ignore[no-untyped-def]
    return PushHarness(
        project_id, tasks_host, oidc_issuer, firestore_client, paused_queue
    )


Client = Callable[..., Any]


@pytest.fixture
def make_client(
    harness: PushHarness, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Client]]:
    """Build a fresh function instance (new module, new clients) for an environment."""

    def build(**overrides: str) -> Client:
        for key, value in harness.env(**overrides).items():
            monkeypatch.setenv(key, value)
        app = functions_framework.create_app(target="receive_push", source=str(SOURCE))
        client = app.test_client()

        def post(body: bytes, token: str | None = "valid", **headers: str) -> Any:
            if token == "valid":
                token = harness.issuer.token()
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            return client.post(
                "/", data=body, headers=headers, content_type="application/json"
            )

        return post

    yield build


def test_first_delivery_writes_marker_and_one_task(
    harness: PushHarness, make_client
) -> None:  # type: ignore[no-untyped-def]
    post = make_client()

    response = post(envelope("first"))

    assert response.status_code == 204
    marker = harness.marker("first")
    assert marker is not None
    assert marker["state"] == "received"
    assert marker["historyId"] == 1000
    assert marker["mailboxId"] == ids.mailbox_id("alice@example.com")
    assert "alice" not in json.dumps(marker, default=str)  # no raw address stored
    assert marker["expiresAt"] > marker["receivedAt"]
    names = harness.task_names()
    assert len(names) == 1
    assert names[0].endswith(
        ids.task_name_for_event(ids.push_event_id(SUBSCRIPTION, "first"))
    )


def test_task_carries_oidc_token_and_event_body(
    harness: PushHarness, make_client
) -> None:  # type: ignore[no-untyped-def]
    post = make_client()

    post(envelope("body-check", history_id=4242))

    (task,) = harness.queue.tasks()
    body = json.loads(task.http_request.body)
    assert body["history_id"] == 4242
    assert body["event_id"] == ids.push_event_id(SUBSCRIPTION, "body-check")
    assert body["mailbox_id"] == ids.mailbox_id("ALICE@example.com")
    assert task.http_request.oidc_token.service_account_email.startswith(
        "tasks-invoker@"
    )
    assert task.http_request.oidc_token.audience == "http://127.0.0.1:9/run_sync"


def test_duplicate_delivery_is_acked_without_second_task(
    harness: PushHarness, make_client
) -> None:  # type: ignore[no-untyped-def]
    post = make_client()

    first = post(envelope("dup"))
    second = post(envelope("dup"))

    assert (first.status_code, second.status_code) == (204, 204)
    assert len(harness.task_names()) == 1


def test_twenty_concurrent_deliveries_make_one_marker_and_one_task(
    harness: PushHarness, make_client
) -> None:  # type: ignore[no-untyped-def]
    post = make_client()
    token = harness.issuer.token()

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(
            pool.map(
                lambda _: post(envelope("burst"), token=token).status_code, range(20)
            )
        )

    assert statuses == [204] * 20
    markers = list(harness.db.collection(PUSH_EVENTS).stream())
    assert len(markers) == 1
    assert len(harness.task_names()) == 1


def test_distinct_messages_each_get_a_task(harness: PushHarness, make_client) -> None:  # type: ignore[no-untyped-def]
    post = make_client()

    for n in range(3):
        assert post(envelope(f"m{n}", history_id=100 + n)).status_code == 204

    assert len(harness.task_names()) == 3


@pytest.mark.parametrize(
    ("case", "token_claims", "status"),
    [
        ("expired", {"exp": 1_000_000, "iat": 999_000}, 401),
        ("wrong audience", {"aud": "https://elsewhere.test"}, 401),
        ("wrong issuer", {"iss": "https://issuer.evil"}, 401),
        ("wrong email", {"email": "mallory@proj.iam.gserviceaccount.com"}, 403),
        ("unverified email", {"email_verified": False}, 403),
        ("valid", {}, 204),
    ],
)
def test_token_checks(
    harness: PushHarness,
    make_client,
    case: str,
    token_claims: dict[str, Any],
    status: int,
) -> None:  # type: ignore[no-untyped-def]
    post = make_client()

    response = post(
        envelope(f"tok-{len(case)}"), token=harness.issuer.token(**token_claims)
    )

    assert response.status_code == status, case
    assert len(harness.task_names()) == (1 if status == 204 else 0)


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("not-a-jwt", 401)])
def test_missing_or_garbage_token_is_401(
    harness: PushHarness, make_client, token: str | None, status: int
) -> None:  # type: ignore[no-untyped-def]
    post = make_client()

    response = post(envelope("no-token"), token=token)

    assert response.status_code == status
    assert harness.marker("no-token") is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'{"message": {"messageId": "x"}, "subscription": "s"}', "no 'data'"),
        (envelope(data=base64.b64encode(b'{"historyId": 5}').decode()), "emailAddress"),
        (
            envelope(data=base64.b64encode(b'{"emailAddress": "a@b.io"}').decode()),
            "historyId",
        ),
        (
            envelope(
                data=base64.b64encode(
                    b'{"emailAddress": "a@b.io", "historyId": "x1"}'
                ).decode()
            ),
            "historyId",
        ),
        (
            b'{"message": {"data": "e30=", "messageId": "1"}, "subscription": "s", "pad": "'
            + b"x" * 70_000
            + b'"}',
            "larger than",
        ),
    ],
)
def test_invalid_payload_is_acked_and_dead_lettered(
    harness: PushHarness, make_client, body: bytes, reason: str
) -> None:  # type: ignore[no-untyped-def]
    post = make_client()

    response = post(body)

    assert response.status_code == 204
    (letter,) = harness.dead_letters()
    assert letter["kind"] == "push"
    assert reason in letter["error"]
    assert letter["payload"]["bodyBytes"] == len(body)
    assert letter["payload"]["body"] == body[: 64 * 1024]
    assert harness.task_names() == []


def test_firestore_down_answers_503(
    harness: PushHarness, make_client, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", CLOSED_PORT_HOST)
    post = make_client(INBOXSYNC_RPC_TIMEOUT_S="1")

    response = post(envelope("store-down"))

    assert response.status_code == 503
    assert (
        "Retry-After" not in response.headers
        or int(response.headers["Retry-After"]) >= 1
    )
    assert harness.task_names() == []


def test_cloud_tasks_down_answers_503_and_redelivery_recovers(
    harness: PushHarness, make_client
) -> None:  # type: ignore[no-untyped-def]
    # Equivalent to a crash between the marker write and the enqueue.
    broken = make_client(CLOUD_TASKS_EMULATOR_HOST=CLOSED_PORT_HOST)

    first = broken(envelope("tasks-down"))

    assert first.status_code == 503
    assert harness.marker("tasks-down")["state"] == "received"  # type: ignore[index]
    assert harness.task_names() == []

    healthy = make_client()
    second = healthy(envelope("tasks-down"))

    assert second.status_code == 204
    assert len(harness.task_names()) == 1


def test_crash_after_marker_before_enqueue_is_recovered_by_redelivery(
    harness: PushHarness, make_client
) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from inboxsync.adapters.firestore import FirestoreStore
    from inboxsync.ports import PushEvent

    # What a function that died right after its Firestore create leaves behind.
    event_id = ids.push_event_id(SUBSCRIPTION, "crashed")
    FirestoreStore(harness.db).create_push_event(
        PushEvent(
            event_id=event_id,
            mailbox_id=ids.mailbox_id("alice@example.com"),
            history_id=1000,
            message_id="crashed",
            subscription=SUBSCRIPTION,
            publish_time=None,
            task_name=ids.task_name_for_event(event_id),
            expires_at=datetime.now(UTC) + timedelta(days=7),
        )
    )
    post = make_client()

    response = post(envelope("crashed"))

    assert response.status_code == 204
    (name,) = harness.task_names()
    assert name.endswith(ids.task_name_for_event(event_id))


def test_duplicate_of_dispatched_event_needs_no_queue(
    harness: PushHarness, make_client
) -> None:  # type: ignore[no-untyped-def]
    from inboxsync.adapters.firestore import FirestoreStore

    make_client()(envelope("done"))
    FirestoreStore(harness.db).mark_push_event_dispatched(
        ids.push_event_id(SUBSCRIPTION, "done")
    )
    broken = make_client(CLOUD_TASKS_EMULATOR_HOST=CLOSED_PORT_HOST)

    response = broken(envelope("done"))

    assert (
        response.status_code == 204
    )  # no enqueue attempted, so the dead queue is not hit


def test_local_mode_needs_no_token_but_needs_emulators(
    harness: PushHarness, make_client, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    post = make_client(INBOXSYNC_LOCAL_MODE="true")

    assert post(envelope("local"), token=None).status_code == 204

    monkeypatch.delenv("CLOUD_TASKS_EMULATOR_HOST")
    misconfigured = make_client(
        INBOXSYNC_LOCAL_MODE="true", CLOUD_TASKS_EMULATOR_HOST=""
    )
    response = misconfigured(envelope("local-2"), token=None)
    assert response.status_code == 500
    assert b"INBOXSYNC_LOCAL_MODE" in response.data


def test_missing_setting_is_named_in_a_500(harness: PushHarness, make_client) -> None:  # type: ignore[no-untyped-def]
    post = make_client(INBOXSYNC_PUSH_AUDIENCE="")

    response = post(envelope("cfg"))

    assert response.status_code == 500
    assert b"INBOXSYNC_PUSH_AUDIENCE is required" in response.data


def test_get_is_rejected(make_client) -> None:  # type: ignore[no-untyped-def]
    make_client()
    app = functions_framework.create_app(target="receive_push", source=str(SOURCE))

    assert app.test_client().get("/").status_code == 405
