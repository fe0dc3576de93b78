"""SandboxState on its own: no HTTP, a fake clock, and threads."""

from __future__ import annotations

import json
import threading

import pytest
from gmail_sandbox_helpers import ALICE, TOPIC

from inboxsync.local.sandbox import FakeClock, Notification, SandboxError, SandboxState


def _state(clock: FakeClock, seed: int = 1) -> SandboxState:
    state = SandboxState(clock=clock, seed=seed)
    state.create_mailbox(ALICE)
    return state


def test_concurrent_deliveries_get_unique_increasing_history_ids(
    fake_clock: FakeClock,
) -> None:
    state = _state(fake_clock)
    start = state.get_profile(ALICE)["historyId"]
    results: list[dict[str, object]] = []
    lock = threading.Lock()

    def deliver_some() -> None:
        for _ in range(25):
            outcome = state.deliver(ALICE, {"subject": "parallel"})
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=deliver_some) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    history = state.list_history(
        ALICE,
        start_history_id=start,
        history_types=[],
        label_id=None,
        max_results="500",
        page_token=None,
    )["history"]
    ids = [int(record["id"]) for record in history]
    assert len(ids) == 200
    assert ids == sorted(set(ids))
    assert len({r["message_ids"][0] for r in results}) == 200  # type: ignore[index]


def test_same_seed_same_ids(fake_clock: FakeClock) -> None:
    first = _state(fake_clock, seed=11).deliver(ALICE, {"count": 3})
    second = _state(fake_clock, seed=11).deliver(ALICE, {"count": 3})
    other = _state(fake_clock, seed=12).deliver(ALICE, {"count": 3})

    assert first == second
    assert first["message_ids"] != other["message_ids"]


def test_snapshot_restore_round_trip(fake_clock: FakeClock) -> None:
    state = _state(fake_clock)
    state.deliver(ALICE, {"labels": ["INBOX", "Family"], "count": 2})
    state.watch(ALICE, {"topicName": TOPIC})
    state.advance_clock(12.5)
    _, snapshot = state.snapshot()

    restored = SandboxState(clock=fake_clock, seed=1)
    restored.restore(json.loads(json.dumps(snapshot)))

    assert restored.snapshot()[1] == snapshot
    assert restored.now_ms() == state.now_ms()
    assert restored.list_labels(ALICE) == state.list_labels(ALICE)


def test_restore_refuses_foreign_files(fake_clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        SandboxState(clock=fake_clock).restore({"format": "something-else"})


def test_revision_moves_on_changes_only(fake_clock: FakeClock) -> None:
    state = _state(fake_clock)
    before = state.revision

    state.get_profile(ALICE)
    state.count_call("getProfile")
    unchanged = state.revision
    state.deliver(ALICE, {})

    assert unchanged == before
    assert state.revision > before


def test_watch_queues_one_notification(fake_clock: FakeClock) -> None:
    state = _state(fake_clock)

    answer = state.watch(ALICE, {"topicName": TOPIC})
    queued = state.drain_notifications()

    assert queued == [Notification(TOPIC, ALICE, int(answer["historyId"]))]
    assert state.drain_notifications() == []


def test_bad_page_token_is_400(fake_clock: FakeClock) -> None:
    state = _state(fake_clock)

    with pytest.raises(SandboxError) as caught:
        state.list_messages(
            ALICE,
            q=None,
            label_ids=[],
            max_results=None,
            page_token="not-a-token",
            include_spam_trash=False,
        )

    assert caught.value.status == 400


def test_fake_clock_only_moves_when_told(fake_clock: FakeClock) -> None:
    start = fake_clock()

    fake_clock.advance(2.5)

    assert fake_clock() == start + 2.5
