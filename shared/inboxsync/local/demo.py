"""`make run`: start the local stack, show the pipeline working, keep serving."""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from inboxsync.errors import ConfigError
from inboxsync.local.control import StackClient
from inboxsync.local.stack import LocalStack, StackStatus, wait_until

__all__ = ["run_demo", "run_stack"]

DEMO_MAILBOX = "demo@inboxsync.local"
_NOTIFY_GAP_S = 1.1
_DEMO_MAIL: list[dict[str, Any]] = [
    {"subject": "Welcome to inboxsync", "sender": "team@example.com"},
    {
        "subject": "Invoice 2026-118",
        "sender": "billing@example.com",
        "attachments": ["invoice.pdf"],
    },
    {"subject": "URGENT: disk almost full", "sender": "alerts@example.com"},
    # Not in INBOX: the watch (INBOX only) sends no notification for it; the
    # next message's notification covers it, since history is read in full.
    {
        "subject": "Newsletter",
        "sender": "news@example.com",
        "labels": ["CATEGORY_PROMOTIONS"],
    },
    {"subject": "Lunch on Friday?", "sender": "friend@example.com"},
]


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(status: StackStatus, *, timeout_s: float = 60) -> dict[str, object]:
    """Deliver demo mail, push one duplicate, wait for the results, report them."""
    client = StackClient(status)
    try:
        client.add_mailbox(DEMO_MAILBOX)
        _say(f"mailbox {DEMO_MAILBOX} registered and watched")

        delivered_at: dict[str, float] = {}
        for mail in _DEMO_MAIL:
            # Gmail sends at most one notification per second per mailbox and
            # drops the rest; spacing the demo mail keeps every message notified.
            time.sleep(_NOTIFY_GAP_S)
            started = time.time()
            for message_id in client.deliver(
                DEMO_MAILBOX,
                subject=str(mail["subject"]),
                sender=str(mail["sender"]),
                labels=list(mail.get("labels", ["INBOX", "UNREAD"])),
                attachments=list(mail.get("attachments", [])),
            ):
                delivered_at[message_id] = started
        _say(f"delivered {len(delivered_at)} messages")

        # The same Pub/Sub message twice, as an at-least-once redelivery would.
        data = json.dumps({"emailAddress": DEMO_MAILBOX, "historyId": 1})
        statuses = [client.push(data, "demo-redelivered").status_code for _ in range(2)]
        _say(f"pushed one notification twice by hand: HTTP {statuses}")

        done = wait_until(
            lambda: all(client.message_done(DEMO_MAILBOX, m) for m in delivered_at),
            timeout_s=timeout_s,
            interval_s=0.2,
        )
        counts = client.counts()
        notifications = client.admin.stats()["notifications"]
        latencies = _latencies_ms(client, delivered_at)
        duplicates = _count_outcome(
            Path(status.log_dir) / "receive_push.log", "duplicate"
        )
    finally:
        client.close()

    report: dict[str, object] = {
        "all_messages_synced": done,
        "notifications_published": notifications["published"],
        "pushes_recorded": counts.push_events,
        "duplicates_blocked": duplicates,
        "messages": dict(counts.messages),
        "actions": dict(counts.actions),
        "dead_letters": dict(counts.dead_letters),
        "latency_ms": latencies,
    }
    _say()
    _say("demo result")
    _say(
        f"  Gmail notifications     {notifications['published']} published,"
        f" {notifications['dropped_rate_limited']} dropped by the 1/s limit"
    )
    _say(f"  pushes recorded         {counts.push_events}")
    _say(f"  duplicate pushes ACKed  {duplicates} (no second task, no second sync)")
    _say(f"  messages synced         {dict(counts.messages)}")
    _say(f"  actions recorded        {dict(counts.actions)}")
    if latencies:
        _say(
            "  delivery -> action done "
            f"p50 {latencies['p50']:.0f} ms, max {latencies['max']:.0f} ms"
            f" over {latencies['count']} actions"
        )
    if not done:
        _say(
            f"  NOT all messages synced within {timeout_s:.0f} s: see {status.log_dir}"
        )
    return report


def _latencies_ms(
    client: StackClient, delivered_at: dict[str, float]
) -> dict[str, float]:
    samples = []
    for record in client.action_records():
        sent = delivered_at.get(str(record.get("messageId")))
        finished = record.get("doneAt")
        if sent is not None and isinstance(finished, datetime):
            samples.append((finished.timestamp() - sent) * 1000)
    if not samples:
        return {}
    return {
        "count": len(samples),
        "p50": statistics.median(samples),
        "max": max(samples),
    }


def _count_outcome(log_path: Path, outcome: str) -> int:
    try:
        lines = log_path.read_text().splitlines()
    except OSError:
        return 0
    needle = f'"outcome":"{outcome}"'
    return sum(needle in line for line in lines)


def run_stack(*, base_port: int | None, rules_file: Path | None, demo: bool) -> int:
    stack = LocalStack(base_port=base_port, rules_file=rules_file)
    _say("starting the local stack (emulators, Gmail sandbox, functions)...")
    try:
        with stack.running() as status:
            _say(f"  receive_push   {status.push_url}")
            _say(f"  run_sync       {status.sync_url}")
            _say(f"  renew_watches  {status.renew_url}  (POST: renew all watches)")
            _say(f"  Gmail sandbox  {status.gmail_api_url}")
            _say(f"  Firestore      {status.firestore_emulator_host}")
            _say(
                f"  Pub/Sub        {status.pubsub_emulator_host}  topic {status.topic}"
            )
            _say(f"  Cloud Tasks    {status.tasks_emulator_host}  queue {status.queue}")
            _say(f"  rules          {status.rules_file}")
            _say(f"  logs           {status.log_dir}")
            if demo:
                _say()
                run_demo(status)
            _say()
            _say("serving; `inboxsync local status --json` describes it. Ctrl-C stops.")
            while True:
                dead = stack.dead_processes()
                if dead:
                    _say(f"stopping: {', '.join(dead)} exited (see {status.log_dir})")
                    return 1
                time.sleep(0.5)
    except KeyboardInterrupt:
        _say("stopped; every process the stack started has ended")
        return 0
    except ConfigError as exc:
        print(f"inboxsync: {exc}", file=sys.stderr)
        return 2
