"""Unit tests of the sync engine against in-memory fakes of its interfaces."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from inboxsync.errors import (
    CredentialsRevoked,
    GmailRateLimited,
    PermanentError,
    QuotaExhausted,
    TransientError,
)
from inboxsync.sync.actions import ActionCall
from inboxsync.sync.engine import EngineConfig
from inboxsync.sync.models import STATUS_DISABLED, STATUS_ERROR, Mailbox, MessageFormat

from .fakes import Crash, FakeClock, FakeGmail, MemoryStore, SinkAction, StepCounter
from .helpers import MAILBOX, add_mailbox, key, make_engine, task


def test_first_sync_without_checkpoint_runs_a_bounded_full_sync() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    first, _ = gmail.deliver()
    second, _ = gmail.deliver()
    add_mailbox(store, checkpoint=None)
    engine = make_engine(gmail, store, {"sink": sink})

    result = engine.sync(task(None))

    assert result.outcome == "synced"
    assert sorted(sink.performed) == sorted([key(first), key(second)])
    assert store.mailboxes[MAILBOX].checkpoint == gmail.history_id
    assert gmail.calls["getProfile"] == 1
    assert gmail.calls["history.list"] == 0


def test_full_sync_stops_at_the_configured_message_limit() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    for _ in range(5):
        gmail.deliver()
    add_mailbox(store, checkpoint=None)
    engine = make_engine(
        gmail, store, {"sink": sink}, config=EngineConfig(full_sync_max_messages=3)
    )

    engine.sync(task(None))

    assert len(sink.performed) == 3
    assert store.mailboxes[MAILBOX].checkpoint == gmail.history_id


def test_in_order_notifications_run_each_action_once() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    engine = make_engine(gmail, store, {"sink": sink})
    expected = []

    for n in range(3):
        message_id, history_id = gmail.deliver()
        expected.append(key(message_id))
        assert engine.sync(task(history_id, name=f"t{n}")).outcome == "synced"

    assert sink.performed == expected
    assert store.mailboxes[MAILBOX].checkpoint == gmail.history_id
    assert all(state == "done" for state in store.processed.values())
    assert all(record["state"] == "done" for record in store.actions.values())


def test_out_of_order_and_duplicate_tasks_never_repeat_or_move_back() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    engine = make_engine(gmail, store, {"sink": sink})
    delivered = [gmail.deliver() for _ in range(3)]

    latest = engine.sync(task(delivered[2][1], name="late"))
    older = [engine.sync(task(h, name=f"old{h}")) for _, h in delivered[:2]]
    again = engine.sync(task(delivered[2][1], name="late"))

    assert latest.outcome == "synced"
    assert [r.outcome for r in older] == ["covered", "covered"]
    assert again.outcome == "covered"
    assert sink.performed == [key(m) for m, _ in delivered]
    assert store.mailboxes[MAILBOX].checkpoint == delivered[2][1]
    assert gmail.calls["history.list"] == 1


def test_history_is_paged_and_checkpoint_advances_after_each_page() -> None:
    gmail, store, sink = FakeGmail(page_size=2), MemoryStore(), SinkAction()
    add_mailbox(store)
    delivered = [gmail.deliver() for _ in range(5)]
    engine = make_engine(gmail, store, {"sink": sink})

    engine.sync(task(delivered[-1][1]))

    assert gmail.calls["history.list"] == 3
    assert store.writes["checkpoint"] == 3
    assert len(sink.performed) == 5


def test_a_task_finding_the_lease_taken_leaves_work_for_the_holder() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    engine = make_engine(gmail, store, {"sink": sink})
    first, first_history = gmail.deliver()
    late: list[str] = []
    outcomes: list[str] = []
    original = gmail.list_history

    def list_history_then_notify(start: int, token: str | None):  # type: ignore[no-untyped-def]
        page = original(start, token)
        if not late:
            # A new message and its notification arrive while the holder works.
            message_id, history_id = gmail.deliver()
            late.append(message_id)
            outcomes.append(engine.sync(task(history_id, name="second")).outcome)
        return page

    gmail.list_history = list_history_then_notify  # type: ignore[method-assign]

    result = engine.sync(task(first_history, name="first"))

    assert outcomes == ["coalesced"]
    assert result.outcome == "synced"
    assert result.stats.passes == 2
    assert sink.performed == [key(first), key(late[0])]
    assert store.mailboxes[MAILBOX].lease_owner is None


def test_a_burst_of_notifications_coalesces_into_few_history_runs() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    engine = make_engine(gmail, store, {"sink": sink})
    # 100 messages land within a second; their tasks then run four at a time.
    delivered = [gmail.deliver() for _ in range(100)]
    gate = threading.Barrier(4)

    def run(n: int) -> str:
        if n < 4:
            gate.wait()
        return engine.sync(task(delivered[n][1], name=f"t{n}")).outcome

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = Counter(pool.map(run, range(100)))

    assert sorted(sink.performed) == sorted(key(m) for m, _ in delivered)
    assert store.mailboxes[MAILBOX].checkpoint == gmail.history_id
    assert store.mailboxes[MAILBOX].lease_owner is None
    assert outcomes["synced"] + outcomes["coalesced"] + outcomes["covered"] == 100
    assert gmail.calls["history.list"] <= 5


def test_crash_after_any_step_resumes_without_loss_or_repeat() -> None:
    # Count the steps of a clean run first, then crash at each one in turn.
    def world(steps: StepCounter):  # type: ignore[no-untyped-def]
        gmail, store = FakeGmail(page_size=2, steps=steps), MemoryStore(steps=steps)
        sink = SinkAction(steps=steps)
        add_mailbox(store)
        delivered = [gmail.deliver() for _ in range(3)]
        return gmail, store, sink, delivered

    clean = StepCounter()
    gmail, store, sink, delivered = world(clean)
    make_engine(gmail, store, {"sink": sink}).sync(task(delivered[-1][1]))
    assert clean.steps > 10

    for crash_at in range(1, clean.steps + 1):
        steps = StepCounter(crash_at)
        gmail, store, sink, delivered = world(steps)
        engine = make_engine(gmail, store, {"sink": sink})
        with pytest.raises(Crash):
            engine.sync(task(delivered[-1][1]))
        steps.crash_at = None

        # Cloud Tasks retries the same task (same name) after the crash.
        engine.sync(task(delivered[-1][1], retry_count=1))

        expected = {key(m) for m, _ in delivered}
        assert set(sink.performed) == expected, crash_at
        # Only a crash between performing and recording repeats a call, with the
        # same idempotency key; nothing else runs twice.
        assert len(sink.performed) <= len(expected) + 1, crash_at
        assert all(r["state"] == "done" for r in store.actions.values()), crash_at
        assert store.mailboxes[MAILBOX].checkpoint == gmail.history_id, crash_at
        assert store.mailboxes[MAILBOX].lease_owner is None, crash_at


def test_expired_history_falls_back_to_full_sync_without_repeats() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    engine = make_engine(gmail, store, {"sink": sink})
    old, old_history = gmail.deliver()
    engine.sync(task(old_history, name="a"))
    new, new_history = gmail.deliver()
    gmail.expired_before = new_history + 100

    result = engine.sync(task(new_history, name="b"))

    assert result.stats.full_syncs == 1
    assert result.stats.messages_duplicate == 1
    assert sink.performed == [key(old), key(new)]
    assert store.mailboxes[MAILBOX].checkpoint == gmail.history_id


def test_messages_deleted_before_fetch_are_skipped_and_counted() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    gone, _ = gmail.deliver()
    kept, history_id = gmail.deliver()
    gmail.delete(gone)
    engine = make_engine(gmail, store, {"sink": sink})

    result = engine.sync(task(history_id))

    assert result.stats.messages_gone == 1
    assert sink.performed == [key(kept)]
    assert store.processed[f"{MAILBOX}/{gone}"] == "gone"


def test_rate_limit_storm_releases_the_lease_and_retries_cleanly() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    message_id, history_id = gmail.deliver()
    gmail.fail(
        "history.list", *(GmailRateLimited("429", retry_after_s=7) for _ in range(3))
    )
    engine = make_engine(gmail, store, {"sink": sink})

    errors = []
    for attempt in range(3):
        with pytest.raises(TransientError) as raised:
            engine.sync(task(history_id, name=f"t{attempt}"))
        errors.append(raised.value.retry_after_s)
        assert store.mailboxes[MAILBOX].lease_owner is None
    result = engine.sync(task(history_id, name="t3"))

    assert errors == [7, 7, 7]
    assert result.outcome == "synced"
    assert sink.performed == [key(message_id)]


def test_revoked_credentials_put_the_mailbox_in_error() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    _, history_id = gmail.deliver()
    gmail.fail("history.list", CredentialsRevoked("invalid_grant"))
    engine = make_engine(gmail, store, {"sink": sink})

    with pytest.raises(PermanentError):
        engine.sync(task(history_id))
    later = engine.sync(task(history_id, name="t2"))

    assert store.mailboxes[MAILBOX].status == STATUS_ERROR
    assert store.mailboxes[MAILBOX].lease_owner is None
    assert later.outcome == "mailbox_error"
    assert sink.performed == []


def test_quota_budget_paces_the_worker_and_resumes_after_the_window() -> None:
    gmail, store, sink = FakeGmail(page_size=2), MemoryStore(), SinkAction()
    add_mailbox(store)
    delivered = [gmail.deliver() for _ in range(6)]
    clock = FakeClock()
    # Each page costs 2 (history.list) + 2 * 5 (messages.get): one page per 15 units.
    config = EngineConfig(quota_units_per_minute=15)
    engine = make_engine(gmail, store, {"sink": sink}, clock=clock, config=config)

    with pytest.raises(QuotaExhausted) as raised:
        engine.sync(task(delivered[-1][1]))
    paused_at = store.mailboxes[MAILBOX].checkpoint
    clock.advance(raised.value.retry_after_s or 0)
    rounds = 1
    while True:
        try:
            engine.sync(task(delivered[-1][1], retry_count=rounds))
            break
        except QuotaExhausted as exc:
            rounds += 1
            clock.advance(exc.retry_after_s or 0)

    assert raised.value.retry_after_s == 60
    assert paused_at == delivered[1][1]
    assert rounds == 2  # three tasks in all: one page per minute after the first
    assert sorted(sink.performed) == sorted(key(m) for m, _ in delivered)


def test_quota_window_is_kept_on_the_mailbox_between_tasks() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    engine = make_engine(
        gmail, store, {"sink": sink}, config=EngineConfig(quota_units_per_minute=10)
    )
    _, first = gmail.deliver()
    engine.sync(task(first, name="a"))  # 2 + 5 units
    _, second = gmail.deliver()

    with pytest.raises(QuotaExhausted):
        engine.sync(task(second, name="b"))  # 2 + 5 more would pass 10

    assert store.mailboxes[MAILBOX].quota.used_units == 9


def test_label_added_later_runs_only_the_label_rules() -> None:
    rules = """
[actions.sink]
type = "sink"
[actions.starred]
type = "sink"

[[rules]]
name = "all"
actions = ["sink"]

[[rules]]
name = "stars"
actions = ["starred"]
[rules.match]
labels = ["STARRED"]
"""
    gmail, store = FakeGmail(), MemoryStore()
    sink, starred = SinkAction(), SinkAction(name="starred")
    add_mailbox(store)
    engine = make_engine(gmail, store, {"sink": sink, "starred": starred}, rules)
    message_id, history_id = gmail.deliver()
    engine.sync(task(history_id, name="a"))

    relabel_history = gmail.relabel(message_id, "STARRED")
    engine.sync(task(relabel_history, name="b"))
    engine.sync(task(gmail.relabel(message_id, "STARRED"), name="c"))

    assert sink.performed == [key(message_id)]
    assert starred.performed == [key(message_id, "starred")]


def test_transient_action_failure_reruns_with_the_same_key() -> None:
    gmail, store = FakeGmail(), MemoryStore()
    sink = SinkAction(faults=[TransientError("target down")])
    add_mailbox(store)
    message_id, history_id = gmail.deliver()
    engine = make_engine(gmail, store, {"sink": sink})

    with pytest.raises(TransientError):
        engine.sync(task(history_id))
    assert store.actions[key(message_id)]["state"] == "started"
    assert store.mailboxes[MAILBOX].checkpoint == 1000
    engine.sync(task(history_id, retry_count=1))

    assert sink.performed == [key(message_id)]
    assert store.actions[key(message_id)]["attempts"] == 2
    assert store.actions[key(message_id)]["state"] == "done"


def test_permanent_action_failure_is_dead_lettered_and_sync_goes_on() -> None:
    gmail, store = FakeGmail(), MemoryStore()
    sink = SinkAction(faults=[PermanentError("target said 400")])
    add_mailbox(store)
    failing, _ = gmail.deliver()
    fine, history_id = gmail.deliver()
    engine = make_engine(gmail, store, {"sink": sink})

    result = engine.sync(task(history_id))

    assert result.stats.actions_failed == 1
    assert store.actions[key(failing)]["state"] == "failed"
    assert ("action", key(failing)) in store.dead_letters
    assert sink.performed == [key(fine)]
    assert store.mailboxes[MAILBOX].checkpoint == history_id


def test_unknown_mailbox_is_dead_lettered_and_disabled_one_skipped() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    engine = make_engine(gmail, store, {"sink": sink})

    unknown = engine.sync(task(5))
    store.add_mailbox(Mailbox(mailbox_id=MAILBOX, address="x", status=STATUS_DISABLED))
    disabled = engine.sync(task(5))

    assert unknown.outcome == "unknown_mailbox"
    assert ("unknown_mailbox", MAILBOX) in store.dead_letters
    assert disabled.outcome == "mailbox_disabled"
    assert store.skipped == 1
    assert gmail.calls == Counter()


def test_endless_notifications_hand_over_after_max_passes() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    engine = make_engine(
        gmail, store, {"sink": sink}, config=EngineConfig(max_passes=2)
    )
    original = gmail.list_history

    def always_more(start: int, token: str | None):  # type: ignore[no-untyped-def]
        page = original(start, token)
        _, history_id = gmail.deliver()
        engine.sync(task(history_id, name="other"))
        return page

    gmail.list_history = always_more  # type: ignore[method-assign]
    _, history_id = gmail.deliver()

    with pytest.raises(TransientError):
        engine.sync(task(history_id))

    assert store.mailboxes[MAILBOX].lease_owner is None
    assert (
        store.mailboxes[MAILBOX].pending_history_id
        > store.mailboxes[MAILBOX].checkpoint
    )


def test_fetch_uses_the_cheapest_format_the_rules_need() -> None:
    rules = """
[actions.sink]
type = "sink"
[[rules]]
name = "attachments"
actions = ["sink"]
[rules.match]
has_attachment = true
"""
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    with_file, _ = gmail.deliver(has_attachment=True)
    _, history_id = gmail.deliver()

    minimal = make_engine(gmail, store, {"sink": sink})
    full = make_engine(gmail, store, {"sink": sink}, rules)
    full.sync(task(history_id))

    assert minimal.message_format is MessageFormat.MINIMAL
    assert gmail.fetched_formats == [MessageFormat.FULL]
    assert sink.performed == [key(with_file)]


def test_fetches_are_batched_by_at_most_fifty() -> None:
    gmail, store, sink = FakeGmail(page_size=500), MemoryStore(), SinkAction()
    add_mailbox(store)
    for _ in range(120):
        gmail.deliver()
    engine = make_engine(gmail, store, {"sink": sink})

    engine.sync(task(gmail.history_id))

    assert gmail.calls["messages.get"] == 3
    assert len(sink.performed) == 120


def test_retry_of_a_holder_that_failed_syncs_the_work_it_left_pending() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    engine = make_engine(gmail, store, {"sink": sink})
    first, first_history = gmail.deliver()
    late: list[str] = []
    original = gmail.list_history

    def list_history_then_notify(start: int, token: str | None):  # type: ignore[no-untyped-def]
        page = original(start, token)
        if not late:
            # A message arrives while the holder works; its task coalesces, and
            # the holder's next pass then hits a Gmail rate limit.
            message_id, history_id = gmail.deliver()
            late.append(message_id)
            assert engine.sync(task(history_id, name="second")).outcome == "coalesced"
            gmail.fail("history.list", GmailRateLimited("429"))
        return page

    gmail.list_history = list_history_then_notify  # type: ignore[method-assign]
    with pytest.raises(TransientError):
        engine.sync(task(first_history, name="first"))

    retried = engine.sync(task(first_history, name="first", retry_count=1))

    assert retried.outcome == "synced"
    assert sink.performed == [key(first), key(late[0])]
    assert store.mailboxes[MAILBOX].checkpoint == gmail.history_id


def test_a_long_pass_keeps_its_lease_so_no_action_runs_twice() -> None:
    gmail, store, clock = FakeGmail(), MemoryStore(), FakeClock()
    add_mailbox(store)
    delivered = [gmail.deliver() for _ in range(4)]
    performed: list[str] = []
    others: list[str] = []

    class SlowAction:
        """Each call takes 100 s; during the third one a new notification arrives."""

        name = "sink"
        message_format = MessageFormat.MINIMAL

        def perform(self, call: ActionCall) -> Mapping[str, Any]:
            performed.append(call.record_id)
            clock.advance(100)
            if len(performed) == 3 and not others:
                other = engine.sync(task(delivered[-1][1], name="other"))
                others.append(other.outcome)
            return {"ok": True}

    engine = make_engine(
        gmail,
        store,
        {"sink": SlowAction()},
        clock=clock,
        config=EngineConfig(lease_s=300),
    )

    result = engine.sync(task(delivered[-1][1], name="slow"))

    assert result.outcome == "synced"
    assert sorted(performed) == sorted(key(m) for m, _ in delivered)
    assert others == ["coalesced"]
    assert store.mailboxes[MAILBOX].lease_owner is None


def test_a_pass_that_lost_its_lease_stops_before_acting_again() -> None:
    gmail, store, clock = FakeGmail(), MemoryStore(), FakeClock()
    add_mailbox(store)
    delivered = [gmail.deliver() for _ in range(3)]
    performed: list[str] = []

    class StuckAction:
        """The first call outlasts the lease; another task takes the mailbox."""

        name = "sink"
        message_format = MessageFormat.MINIMAL

        def perform(self, call: ActionCall) -> Mapping[str, Any]:
            performed.append(call.record_id)
            if len(performed) == 1:
                clock.advance(400)
                engine.sync(task(delivered[-1][1], name="other"))
            return {"ok": True}

    engine = make_engine(
        gmail,
        store,
        {"sink": StuckAction()},
        clock=clock,
        config=EngineConfig(lease_s=300),
    )

    with pytest.raises(TransientError):
        engine.sync(task(delivered[-1][1], name="stuck"))

    # Only the message being acted on when the lease ran out is repeated (with
    # the same idempotency key); the rest ran once, by the new holder.
    assert sorted(performed) == sorted(
        [key(delivered[0][0])] + [key(m) for m, _ in delivered]
    )
    assert store.mailboxes[MAILBOX].checkpoint == gmail.history_id


def test_label_added_after_a_crash_before_the_checkpoint_still_runs_its_rules() -> None:
    rules = """
[actions.sink]
type = "sink"
[actions.starred]
type = "sink"

[[rules]]
name = "all"
actions = ["sink"]

[[rules]]
name = "stars"
actions = ["starred"]
[rules.match]
labels = ["STARRED"]
"""
    gmail, store = FakeGmail(), MemoryStore()
    sink, starred = SinkAction(), SinkAction(name="starred")
    add_mailbox(store)
    engine = make_engine(gmail, store, {"sink": sink, "starred": starred}, rules)
    message_id, _ = gmail.deliver()
    # A run finished the message, then died before moving the checkpoint past it;
    # meanwhile the message was starred, so one listing now holds both records.
    store.processed[f"{MAILBOX}/{message_id}"] = "done"
    store.actions[key(message_id)] = {"state": "done", "attempts": 1}
    relabel_history = gmail.relabel(message_id, "STARRED")

    engine.sync(task(relabel_history, name="retry", retry_count=1))

    assert sink.performed == []
    assert starred.performed == [key(message_id, "starred")]


def test_a_duplicate_delivery_of_a_running_task_does_not_share_its_lease() -> None:
    gmail, store, sink = FakeGmail(), MemoryStore(), SinkAction()
    add_mailbox(store)
    engine = make_engine(gmail, store, {"sink": sink})
    first, history_id = gmail.deliver()
    late: list[str] = []
    duplicates: list[str] = []
    original = gmail.list_history

    def list_history_then_duplicate(start: int, token: str | None):  # type: ignore[no-untyped-def]
        page = original(start, token)
        if not late:
            # Cloud Tasks delivers the same attempt again while it still runs.
            late.append(gmail.deliver()[0])
            duplicates.append(engine.sync(task(gmail.history_id, name="t1")).outcome)
        return page

    gmail.list_history = list_history_then_duplicate  # type: ignore[method-assign]

    result = engine.sync(task(history_id, name="t1"))

    assert duplicates == ["coalesced"]
    assert result.outcome == "synced"
    assert sink.performed == [key(first), key(late[0])]
    assert store.mailboxes[MAILBOX].lease_owner is None
