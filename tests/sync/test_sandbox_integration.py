"""run_sync's worker end to end: Firestore emulator, Gmail sandbox, a real webhook."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from inboxsync import ids
from inboxsync.local.sandbox import (
    FakeClock,
    RecordingPublisher,
    SandboxAdmin,
    SandboxServer,
    SandboxState,
)
from inboxsync.sync.build import build_sync_worker
from inboxsync.sync.firestore_store import SyncFirestore
from inboxsync.sync.quota import DEFAULT_METHOD_UNITS
from inboxsync.sync.registration import register_mailbox
from inboxsync.sync.worker import SyncRequest, SyncWorker

pytestmark = pytest.mark.emulators
ADDRESS = "owner@example.com"
MAILBOX = ids.mailbox_id(ADDRESS)
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class _Hook(BaseHTTPRequestHandler):
    seen: Counter[str] = Counter()

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["content-length"]))
        Webhook(SECRET).verify(data, {k.lower(): v for k, v in self.headers.items()})
        self.seen[self.headers["webhook-id"]] += 1
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hook_url() -> Iterator[str]:
    _Hook.seen = Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    state = SandboxState(clock=FakeClock(start_s=1_750_000_000.0), seed=3)
    server = SandboxServer(state, publisher=RecordingPublisher()).start()
    yield server
    server.stop()


@pytest.fixture
def admin(sandbox: SandboxServer) -> Iterator[SandboxAdmin]:
    client = SandboxAdmin(sandbox.url)
    client.create_mailbox(ADDRESS)
    yield client
    client.close()


@pytest.fixture
def env(
    tmp_path: Path,
    firestore_host: str,
    project_id: str,
    sandbox: SandboxServer,
    hook_url: str,
) -> dict[str, str]:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f"""
[actions.keep]
type = "record"
[actions.star]
type = "label"
label_ids = ["STARRED"]
[actions.hook]
type = "forward"
url = "{hook_url}"
secret_env = "HOOK_SECRET"

[[rules]]
name = "inbox"
actions = ["keep"]
[rules.match]
labels = ["INBOX"]

[[rules]]
name = "invoices"
actions = ["star", "hook"]
[rules.match]
subject = "invoice"
"""
    )
    return {
        "INBOXSYNC_PROJECT": project_id,
        "INBOXSYNC_LOCAL_MODE": "true",
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:9",
        "INBOXSYNC_GMAIL_API_URL": sandbox.url,
        "INBOXSYNC_RULES_FILE": str(rules),
        "INBOXSYNC_MAX_ATTEMPTS": "5",
        "HOOK_SECRET": SECRET,
    }


@pytest.fixture
def worker(env: dict[str, str]) -> SyncWorker:
    return build_sync_worker(env)


@pytest.fixture
def store(firestore_client) -> SyncFirestore:  # type: ignore[no-untyped-def]
    return SyncFirestore(firestore_client)


def send(worker: SyncWorker, history_id: int | str, name: str = "t", retry: int = 0):  # type: ignore[no-untyped-def]
    body = {"event_id": None, "mailbox_id": MAILBOX, "history_id": int(history_id)}
    headers = {"X-CloudTasks-TaskName": name, "X-CloudTasks-TaskRetryCount": str(retry)}
    return worker.handle(SyncRequest(headers, json.dumps(body).encode()))


def actions_by_state(store: SyncFirestore) -> Counter[str]:
    return Counter(d.get("state") for d in store.client.collection("actions").stream())


def test_first_sync_then_history_runs_every_action_once(
    worker: SyncWorker, admin: SandboxAdmin, store: SyncFirestore
) -> None:
    admin.deliver(ADDRESS, subject="hello", labels=["INBOX"])
    register_mailbox(store, ADDRESS, auth="none")
    first = send(worker, admin.get_mailbox(ADDRESS)["history_id"], "a")
    invoice = admin.deliver(ADDRESS, subject="Invoice 7", labels=["INBOX"])

    second = send(worker, invoice.history_id, "b")
    repeat = send(worker, invoice.history_id, "b")

    assert (first.outcome, second.outcome, repeat.outcome) == (
        "synced",
        "synced",
        "covered",
    )
    assert actions_by_state(store) == {"done": 4}  # keep x2, star, hook
    assert _Hook.seen == {ids.action_id(MAILBOX, invoice.message_ids[0], "hook"): 1}
    mailbox = store.get_mailbox(MAILBOX)
    assert mailbox is not None
    # The label action's own change comes after the checkpoint: a later pass sees it.
    assert mailbox.checkpoint is not None
    assert mailbox.checkpoint >= int(invoice.history_id)


def test_expired_history_falls_back_to_full_sync(
    worker: SyncWorker, admin: SandboxAdmin, store: SyncFirestore
) -> None:
    old = admin.deliver(ADDRESS, subject="one", labels=["INBOX"])
    register_mailbox(store, ADDRESS, auth="none", history_id=int(old.history_id) - 1)
    send(worker, old.history_id, "a")
    admin.expire_history(ADDRESS)
    new = admin.deliver(ADDRESS, subject="two", labels=["INBOX"])

    outcome = send(worker, new.history_id, "b")

    assert outcome.outcome == "synced"
    assert actions_by_state(store) == {"done": 2}


def test_deleted_message_is_skipped(
    worker: SyncWorker, admin: SandboxAdmin, store: SyncFirestore
) -> None:
    start = int(admin.get_mailbox(ADDRESS)["history_id"])
    register_mailbox(store, ADDRESS, auth="none", history_id=start)
    gone = admin.deliver(ADDRESS, subject="gone", labels=["INBOX"])
    kept = admin.deliver(ADDRESS, subject="kept", labels=["INBOX"])
    admin.delete_message(ADDRESS, gone.message_ids[0])

    outcome = send(worker, kept.history_id)

    assert outcome.outcome == "synced"
    assert actions_by_state(store) == {"done": 1}


def test_rate_limit_storm_then_success(
    worker: SyncWorker, admin: SandboxAdmin, store: SyncFirestore
) -> None:
    register_mailbox(store, ADDRESS, auth="none", history_id=1)
    register_mailbox(
        store,
        ADDRESS,
        auth="none",
        history_id=int(admin.get_mailbox(ADDRESS)["history_id"]),
    )
    message = admin.deliver(ADDRESS, subject="x", labels=["INBOX"])
    admin.inject_fault("history.list", status=429, count=3)

    statuses = [send(worker, message.history_id, "t", retry=n).status for n in range(4)]

    assert statuses == [503, 503, 503, 204]
    assert actions_by_state(store) == {"done": 1}


def test_revoked_credentials_dead_letter_and_ack(
    worker: SyncWorker, admin: SandboxAdmin, store: SyncFirestore
) -> None:
    start = int(admin.get_mailbox(ADDRESS)["history_id"])
    register_mailbox(store, ADDRESS, auth="none", history_id=start)
    message = admin.deliver(ADDRESS, subject="x", labels=["INBOX"])
    admin.inject_fault("history.list", status=401)

    outcome = send(worker, message.history_id)

    mailbox = store.get_mailbox(MAILBOX)
    assert (outcome.status, outcome.outcome) == (204, "permanent_error")
    assert mailbox is not None and mailbox.status == "error"
    assert list(store.client.collection("dead_letters").stream())


def test_quota_budget_answers_503_before_gmail_would(
    env: dict[str, str], admin: SandboxAdmin, store: SyncFirestore
) -> None:
    worker = build_sync_worker({**env, "INBOXSYNC_GMAIL_QUOTA_UNITS_PER_MINUTE": "50"})
    start = int(admin.get_mailbox(ADDRESS)["history_id"])
    register_mailbox(store, ADDRESS, auth="none", history_id=start)
    delivery = admin.deliver(ADDRESS, subject="x", labels=["INBOX"], count=12)

    outcome = send(worker, delivery.history_id)

    assert outcome.status == 503
    assert outcome.retry_after_s is not None and 1 <= outcome.retry_after_s <= 60
    assert "messages.get" not in admin.stats()["calls"]
    assert actions_by_state(store) == Counter()


def test_burst_of_100_notifications_figures(
    worker: SyncWorker, admin: SandboxAdmin, store: SyncFirestore
) -> None:
    start = int(admin.get_mailbox(ADDRESS)["history_id"])
    register_mailbox(store, ADDRESS, auth="none", history_id=start)
    deliveries = [
        admin.deliver(ADDRESS, subject=f"m{n}", labels=["INBOX"]) for n in range(100)
    ]
    before = Counter(admin.stats()["calls"])
    gate = threading.Barrier(4)

    def run(n: int) -> str:
        if n < 4:
            gate.wait()
        return str(send(worker, deliveries[n].history_id, f"task-{n}").outcome)

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = Counter(pool.map(run, range(100)))

    calls = Counter(admin.stats()["calls"]) - before
    units = sum(DEFAULT_METHOD_UNITS.get(m, 0) * n for m, n in calls.items())
    print(
        f"\nburst of 100: outcomes={dict(outcomes)} gmail calls={dict(calls)} units={units}"
    )
    assert actions_by_state(store) == {"done": 100}
    assert calls["history.list"] <= 5
    mailbox = store.get_mailbox(MAILBOX)
    assert mailbox is not None and mailbox.lease_owner is None
