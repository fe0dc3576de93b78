"""Cost of syncing one new message (`make bench`, third part).

Runs the sync worker in-process against the Firestore emulator and an
in-process Gmail sandbox, and counts at the SDK boundary: Firestore commits
(create / set / update) and reads, Gmail calls and their quota units. The
in-run baseline is a task that finds nothing new (the fixed cost of a task),
so the per-message figure is (backlog run - baseline) / messages. Then a burst
of notification tasks for one mailbox shows how many history.list runs it
coalesces into.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inboxsync import ids
from inboxsync.local import emulators
from inboxsync.local.bench_stack import RECORD_RULES
from inboxsync.local.sandbox import SandboxAdmin, SandboxServer, SandboxState
from inboxsync.sync.quota import DEFAULT_METHOD_UNITS

__all__ = ["main"]


@contextmanager
def _count_firestore_calls(counts: Counter[str]) -> Iterator[None]:
    """Count document commits and reads made through the Firestore SDK."""
    from google.cloud.firestore_v1.document import DocumentReference

    originals: dict[str, Callable[..., Any]] = {}
    for name in ("create", "set", "update", "delete", "get"):
        originals[name] = getattr(DocumentReference, name)

        def counted(self: Any, *args: Any, _name: str = name, **kwargs: Any) -> Any:
            counts["read" if _name == "get" else "write"] += 1
            return originals[_name](self, *args, **kwargs)

        setattr(DocumentReference, name, counted)
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(DocumentReference, name, original)


def _task(mailbox_id: str, history_id: int, name: str) -> Any:
    from inboxsync.sync.worker import SyncRequest

    body = {"event_id": None, "mailbox_id": mailbox_id, "history_id": history_id}
    headers = {"x-cloudtasks-taskname": name, "x-cloudtasks-taskretrycount": "0"}
    return SyncRequest(headers, json.dumps(body).encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from inboxsync.adapters.firestore import make_client
    from inboxsync.config import CommonSettings
    from inboxsync.sync.build import build_sync_worker
    from inboxsync.sync.firestore_store import SyncFirestore
    from inboxsync.sync.registration import register_mailbox

    with tempfile.TemporaryDirectory(prefix="inboxsync-bench-sync-") as tmp:
        rules = Path(tmp) / "rules.toml"
        rules.write_text(RECORD_RULES)
        firestore_proc = emulators.start_firestore(log_dir=Path(tmp))
        sandbox = SandboxServer(SandboxState(seed=7)).start()
        try:
            env = {
                "INBOXSYNC_PROJECT": "bench-sync",
                "INBOXSYNC_LOCAL_MODE": "true",
                "INBOXSYNC_LOG_LEVEL": "WARNING",
                "FIRESTORE_EMULATOR_HOST": firestore_proc.address,
                "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:9",
                "INBOXSYNC_GMAIL_API_URL": sandbox.url,
                "INBOXSYNC_RULES_FILE": str(rules),
            }
            worker = build_sync_worker(env)
            client = make_client(
                CommonSettings(
                    "bench-sync",
                    "(default)",
                    True,
                    "WARNING",
                    firestore_proc.address,
                    "-",
                )
            )
            admin = SandboxAdmin(sandbox.url)
            address = "bench@example.com"
            admin.create_mailbox(address)
            start = int(admin.get_mailbox(address)["history_id"])
            register_mailbox(
                SyncFirestore(client), address, auth="none", history_id=start
            )
            mailbox = ids.mailbox_id(address)

            def run(history_id: int, name: str) -> tuple[Counter[str], Counter[str]]:
                before = Counter(admin.stats()["calls"])
                counts: Counter[str] = Counter()
                with _count_firestore_calls(counts):
                    outcome = worker.handle(_task(mailbox, history_id, name))
                assert outcome.status == 204, outcome
                return counts, Counter(admin.stats()["calls"]) - before

            # Baseline: a notification past the checkpoint with nothing new.
            admin.advance_clock(0)
            bumped = int(admin.deliver(address, labels=["SENT"]).history_id)
            run(bumped, "warm-up")
            empty = int(admin.deliver(address, labels=["SENT"]).history_id)
            base_fs, base_gmail = run(empty, "baseline")

            delivery = admin.deliver(address, subject="bench", count=args.messages)
            full_fs, full_gmail = run(int(delivery.history_id), "backlog")

            burst_at = int(admin.deliver(address, subject="burst").history_id)
            before = Counter(admin.stats()["calls"])
            with ThreadPoolExecutor(max_workers=4) as pool:
                outcomes = list(
                    pool.map(
                        lambda n: worker.handle(_task(mailbox, burst_at, f"burst-{n}")),
                        range(args.burst),
                    )
                )
            burst_calls = Counter(admin.stats()["calls"]) - before
            admin.close()
            client.close()  # type: ignore[no-untyped-call]
        finally:
            sandbox.stop()
            firestore_proc.stop()

    def units(calls: Counter[str]) -> int:
        return sum(DEFAULT_METHOD_UNITS.get(m, 0) * n for m, n in calls.items())

    n = args.messages
    print(f"sync cost, {n} new messages in one task vs. a task with nothing new")
    print(f"{'':34}{'baseline task':>14}{'backlog task':>14}{'per message':>13}")
    for label, base, full in (
        ("Firestore writes", base_fs["write"], full_fs["write"]),
        ("Firestore reads", base_fs["read"], full_fs["read"]),
        ("Gmail calls", sum(base_gmail.values()), sum(full_gmail.values())),
        ("Gmail quota units", units(base_gmail), units(full_gmail)),
    ):
        print(f"  {label:32}{base:14}{full:14}{(full - base) / n:13.2f}")
    print(f"  Gmail calls in the backlog task: {dict(full_gmail)}")
    print(
        f"burst of {args.burst} tasks for one notification (4 threads):"
        f" {burst_calls.get('history.list', 0)} history.list runs,"
        f" outcomes {dict(Counter(o.outcome for o in outcomes))}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
