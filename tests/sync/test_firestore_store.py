"""The Firestore adapter of the sync engine, against the real Firestore emulator."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from inboxsync import ids
from inboxsync.sync.firestore_store import SyncFirestore
from inboxsync.sync.models import ActionState, QuotaState
from inboxsync.sync.registration import register_mailbox

from .fakes import FakeClock, FakeConnector, FakeGmail, SinkAction
from .helpers import ADDRESS, MAILBOX, SINK_RULES, key, task

pytestmark = pytest.mark.emulators
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(firestore_client) -> SyncFirestore:  # type: ignore[no-untyped-def]
    return SyncFirestore(firestore_client)


def make_engine(store: SyncFirestore, gmail: FakeGmail, sink: SinkAction):  # type: ignore[no-untyped-def]
    import tomllib

    from inboxsync.sync.engine import SyncEngine
    from inboxsync.sync.rules import parse_rules

    return SyncEngine(
        mailboxes=store,
        messages=store,
        action_ledger=store,
        dead_letters=store,
        gmail=FakeConnector(gmail),
        rules=parse_rules(tomllib.loads(SINK_RULES)),
        actions={"sink": sink},
        clock=FakeClock(),
    )


def test_register_mailbox_creates_and_reenables_without_moving_back(
    store: SyncFirestore,
) -> None:
    mailbox_id = register_mailbox(store, ADDRESS.upper(), auth="none", history_id=500)
    store.mark_error(mailbox_id, "CredentialsRevoked: gone", now=NOW)
    register_mailbox(store, ADDRESS, auth="none", history_id=100)

    mailbox = store.get_mailbox(mailbox_id)

    assert mailbox_id == ids.mailbox_id(ADDRESS)
    assert mailbox is not None
    assert mailbox.status == "active"
    assert mailbox.address == ADDRESS
    assert mailbox.checkpoint == 500


def test_lease_is_exclusive_and_pending_work_keeps_it(store: SyncFirestore) -> None:
    register_mailbox(store, ADDRESS, auth="none", history_id=100)

    first = store.acquire_lease(MAILBOX, "a", 150, now=NOW, lease_s=60)
    second = store.acquire_lease(MAILBOX, "b", 170, now=NOW, lease_s=60)
    store.advance_checkpoint(MAILBOX, 160, quota=QuotaState(), now=NOW, lease_s=60)
    again = store.release_lease(
        MAILBOX, "a", quota=QuotaState(1.0, 7), now=NOW, lease_s=60
    )
    store.advance_checkpoint(MAILBOX, 175, quota=QuotaState(), now=NOW, lease_s=60)
    released = store.release_lease(
        MAILBOX, "a", quota=QuotaState(), now=NOW, lease_s=60
    )
    third = store.acquire_lease(MAILBOX, "b", 180, now=NOW, lease_s=60)

    assert first is not None and first.lease_owner == "a"
    assert second is None
    assert again is not None and again.pending_history_id == 170
    assert released is None
    assert third is not None and third.checkpoint == 175


def test_checkpoint_never_moves_back(store: SyncFirestore) -> None:
    register_mailbox(store, ADDRESS, auth="none", history_id=100)

    store.advance_checkpoint(MAILBOX, 300, quota=QuotaState(), now=NOW, lease_s=60)
    store.advance_checkpoint(MAILBOX, 200, quota=QuotaState(), now=NOW, lease_s=60)

    mailbox = store.get_mailbox(MAILBOX)
    assert mailbox is not None and mailbox.checkpoint == 300


def test_expired_lease_can_be_taken_over(store: SyncFirestore) -> None:
    register_mailbox(store, ADDRESS, auth="none", history_id=100)
    store.acquire_lease(MAILBOX, "a", 150, now=NOW, lease_s=60)

    later = datetime(2030, 1, 1, 0, 2, tzinfo=UTC)
    taken = store.acquire_lease(MAILBOX, "b", 150, now=later, lease_s=60)

    assert taken is not None and taken.lease_owner == "b"


def test_message_and_action_ledgers(store: SyncFirestore) -> None:
    record = key("m1")

    fresh = store.claim_message(MAILBOX, "m1", expires_at=NOW)
    unfinished = store.claim_message(MAILBOX, "m1", expires_at=NOW)
    store.finish_message(MAILBOX, "m1", "done")
    finished = store.claim_message(MAILBOX, "m1", expires_at=NOW)
    states = [store.begin_action(record, {"action": "sink"}, expires_at=NOW)]
    states.append(store.begin_action(record, {"action": "sink"}, expires_at=NOW))
    store.finish_action(record, {"ok": True})
    states.append(store.begin_action(record, {"action": "sink"}, expires_at=NOW))

    assert (fresh, unfinished, finished) == (True, True, False)
    assert states == [ActionState.NEW, ActionState.RETRY, ActionState.DONE]
    doc = store.client.collection("actions").document(record).get().to_dict()
    assert doc["attempts"] == 2 and doc["state"] == "done"
    assert isinstance(doc["expiresAt"], datetime)


def test_concurrent_tasks_for_one_mailbox_sync_everything_once(
    store: SyncFirestore,
) -> None:
    register_mailbox(store, ADDRESS, auth="none", history_id=1000)
    gmail, sink = FakeGmail(), SinkAction()
    engine = make_engine(store, gmail, sink)
    delivered = [gmail.deliver() for _ in range(12)]
    gate = threading.Barrier(3)

    def run(n: int) -> str:
        if n < 3:
            gate.wait()
        return engine.sync(task(delivered[n][1], name=f"t{n}")).outcome

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(run, range(len(delivered))))

    mailbox = store.get_mailbox(MAILBOX)
    assert sorted(sink.performed) == sorted(key(m) for m, _ in delivered)
    assert mailbox is not None and mailbox.checkpoint == gmail.history_id
    assert mailbox.lease_owner is None
    assert outcomes.count("synced") >= 1
    assert gmail.calls["history.list"] <= 4


def test_lease_renewal_only_for_its_holder(store: SyncFirestore) -> None:
    register_mailbox(store, ADDRESS, auth="none", history_id=100)
    store.acquire_lease(MAILBOX, "a", 150, now=NOW, lease_s=60)
    renewed = store.renew_lease(MAILBOX, "a", now=NOW, lease_s=600)
    too_early = store.acquire_lease(
        MAILBOX, "b", 150, now=datetime(2030, 1, 1, 0, 2, tzinfo=UTC), lease_s=60
    )
    later = datetime(2030, 1, 1, 0, 20, tzinfo=UTC)
    taken = store.acquire_lease(MAILBOX, "b", 150, now=later, lease_s=60)

    lost = store.renew_lease(MAILBOX, "a", now=later, lease_s=60)

    assert renewed is True
    assert too_early is None
    assert taken is not None and taken.lease_owner == "b"
    assert lost is False
    mailbox = store.get_mailbox(MAILBOX)
    assert mailbox is not None and mailbox.lease_owner == "b"
