"""Benchmarks of the whole local stack (`make bench`, second part).

1. End-to-end latency: mail delivered to the Gmail sandbox → action recorded
   in Firestore, over many messages spread across mailboxes (Gmail notifies at
   most once per second per mailbox, so each mailbox gets one message a round).
   Its in-run baseline is the notification leg alone: delivery → push marker
   written by receive_push.
2. Sync throughput: a backlog of messages in one mailbox, then in ten, picked
   up by one notification each; messages synced per second.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from inboxsync import ids
from inboxsync.adapters.firestore import ACTIONS, PROCESSED_MESSAGES, PUSH_EVENTS
from inboxsync.local.control import StackClient
from inboxsync.local.stack import LocalStack, wait_until

__all__ = ["RECORD_RULES", "main"]

# One rule, one `record` action: the cheapest full path through the pipeline.
RECORD_RULES = """
[actions.keep]
type = "record"

[[rules]]
name = "inbox"
actions = ["keep"]
[rules.match]
labels = ["INBOX"]
"""


def _summary(samples: list[float]) -> str:
    if len(samples) < 2:
        return "n/a"
    cut = statistics.quantiles(sorted(samples), n=100, method="inclusive")
    return (
        f"p50 {cut[49]:7.1f}  p99 {cut[98]:7.1f}  max {max(samples):7.1f}"
        f"  (n={len(samples)})"
    )


def _latency(
    client: StackClient, mailboxes: list[str], rounds: int
) -> tuple[list[float], list[float]]:
    sent: dict[str, tuple[str, float]] = {}
    for _ in range(rounds):
        time.sleep(1.05)  # one notification per mailbox per second, as Gmail
        for address in mailboxes:
            started = time.time()
            (gmail_id,) = client.deliver(address, subject="latency probe")
            sent[gmail_id] = (address, started)
    wait_until(
        lambda: all(client.message_done(a, m) for m, (a, _) in sent.items()),
        timeout_s=120,
        interval_s=0.2,
    )
    action_ms = []
    for doc in client.firestore.collection(ACTIONS).stream():
        record = doc.to_dict() or {}
        origin = sent.get(str(record.get("messageId")))
        done = record.get("doneAt")
        if origin and isinstance(done, datetime):
            action_ms.append((done.timestamp() - origin[1]) * 1000)
    # The notification leg: the first push marker after each delivery.
    markers: dict[str, list[float]] = {}
    for doc in client.firestore.collection(PUSH_EVENTS).stream():
        received = doc.get("receivedAt")
        if isinstance(received, datetime):
            markers.setdefault(str(doc.get("mailboxId")), []).append(
                received.timestamp()
            )
    push_ms = []
    for address, started in sent.values():
        later = [t for t in markers.get(ids.mailbox_id(address), []) if t >= started]
        if later:
            push_ms.append((min(later) - started) * 1000)
    return push_ms, action_ms


def _throughput(client: StackClient, mailboxes: list[str], per_mailbox: int) -> float:
    already_done = _done_count(client)
    backlog: dict[str, str] = {}
    for address in mailboxes:
        for gmail_id in client.deliver(address, subject="backlog", count=per_mailbox):
            backlog[gmail_id] = address
    time.sleep(1.05)  # let the rate-limited notifications of the backlog pass
    started = time.monotonic()
    for address in mailboxes:
        client.publish(address)
    wait_until(
        lambda: _done_count(client) >= already_done + len(backlog),
        timeout_s=300,
        interval_s=0.1,
    )
    return len(backlog) / (time.monotonic() - started)


def _done_count(client: StackClient) -> int:
    docs = client.firestore.collection(PROCESSED_MESSAGES).select(["state"]).stream()
    return sum(1 for doc in docs if doc.get("state") == "done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backlog", type=int, default=200)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="inboxsync-bench-stack-") as tmp:
        rules = Path(tmp) / "rules.toml"
        rules.write_text(RECORD_RULES)
        stack = LocalStack(state_dir=Path(tmp) / "state", base_port=0, rules_file=rules)
        with stack.running() as status:
            client = StackClient(status)
            try:
                ten = [f"bench{n}@example.com" for n in range(10)]
                one = ["solo@example.com"]
                for address in ten + one:
                    client.add_mailbox(address)
                push_ms, action_ms = _latency(client, ten, args.rounds)
                solo_rate = _throughput(client, one, args.backlog)
                ten_rate = _throughput(client, ten, args.backlog // 10)
            finally:
                client.close()

    print(
        f"end-to-end latency on the local stack, {len(ten)} mailboxes"
        f" x {args.rounds} rounds (ms)"
    )
    print(f"  baseline: delivery -> push recorded   {_summary(push_ms)}")
    print(f"  delivery -> action recorded           {_summary(action_ms)}")
    print(f"sync throughput ({args.backlog} messages backlog)")
    print(f"  one mailbox   {solo_rate:7.1f} messages/s")
    print(f"  ten mailboxes {ten_rate:7.1f} messages/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
