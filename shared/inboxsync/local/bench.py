"""Benchmarks of the push receiver on the local emulators (`make bench`).

Prints ACK latency percentiles for real HTTP pushes to a functions-framework
process, next to a baseline measured in the same run: a do-nothing function
served the same way, so the figure that matters is the difference. Also counts
the Firestore and Cloud Tasks calls the ACK path makes per push.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from inboxsync.local import emulators
from inboxsync.local.stack import start_function

__all__ = ["main"]

_NOOP_SOURCE = """
def noop(request):
    request.get_data()
    return ("", 204)
"""


def _envelope(n: int) -> bytes:
    data = json.dumps(
        {"emailAddress": f"user{n % 10}@example.com", "historyId": 1000 + n}
    )
    return json.dumps(
        {
            "message": {
                "data": base64.b64encode(data.encode()).decode(),
                "messageId": f"bench-{n}",
                "publishTime": "2026-12-03T10:00:00Z",
            },
            "subscription": "projects/bench/subscriptions/push",
        }
    ).encode()


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50": round(cut[49], 2),
        "p90": round(cut[89], 2),
        "p99": round(cut[98], 2),
        "max": round(ordered[-1], 2),
    }


def _time_posts(url: str, bodies: list[bytes]) -> tuple[list[float], Counter[int]]:
    session = requests.Session()
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    for body in bodies:
        started = time.perf_counter()
        response = session.post(url, data=body, headers=headers, timeout=30)
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[response.status_code] += 1
    return latencies, statuses


class _Counting:
    """Wraps an adapter and counts calls per method name."""

    def __init__(self, inner: object, counts: Counter[str], prefix: str) -> None:
        self._inner = inner
        self._counts = counts
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._counts[f"{self._prefix}.{name}"] += 1
            return attribute(*args, **kwargs)

        return counted


def _count_rpcs(env: Mapping[str, str], pushes: int) -> dict[str, dict[str, float]]:
    """Drive the receiver in-process with counting adapters: calls per push."""
    from inboxsync.adapters.firestore import FirestoreStore, make_client
    from inboxsync.config import PushSettings
    from inboxsync.receiver import PushReceiver, PushRequest
    from inboxsync.wiring import build_queue

    settings = PushSettings.from_env(env)
    counts: Counter[str] = Counter()
    store = _Counting(FirestoreStore(make_client(settings.common)), counts, "firestore")
    queue = _Counting(
        build_queue(settings.queue, settings.common, timeout_s=settings.rpc_timeout_s),
        counts,
        "tasks",
    )
    receiver = PushReceiver(
        verifier=None,
        events=store,
        dead_letters=store,
        queue=queue,
        event_ttl=timedelta(days=7),
        max_body_bytes=settings.max_body_bytes,
    )
    result: dict[str, dict[str, float]] = {}
    logging.getLogger("inboxsync.receive_push").disabled = True  # one line per push
    for phase, offset in (("new", 50_000), ("duplicate", 50_000)):
        counts.clear()
        for n in range(pushes):
            receiver.handle(PushRequest({}, _envelope(offset + n)))
        result[phase] = {k: v / pushes for k, v in sorted(counts.items())}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=1000)
    args = parser.parse_args(argv)
    # A SIGTERM (e.g. from `timeout`) must still run the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="inboxsync-bench-") as tmp:
        work = Path(tmp)
        project = "bench"
        queue = "bench-queue"
        queue_path = f"projects/{project}/locations/local/queues/{queue}"
        started: list[emulators.ManagedProcess] = []
        try:
            firestore = emulators.start_firestore(log_dir=work)
            started.append(firestore)
            tasks = emulators.start_tasks(queues=[queue_path], log_dir=work)
            started.append(tasks)
            _pause(tasks.address, queue_path)
            env = {
                "INBOXSYNC_PROJECT": project,
                "INBOXSYNC_LOCAL_MODE": "true",
                "INBOXSYNC_LOG_LEVEL": "WARNING",
                "FIRESTORE_EMULATOR_HOST": firestore.address,
                "CLOUD_TASKS_EMULATOR_HOST": tasks.address,
                "INBOXSYNC_TASKS_LOCATION": "local",
                "INBOXSYNC_TASKS_QUEUE": queue,
                "INBOXSYNC_SYNC_URL": "http://127.0.0.1:9/",
            }
            push_port = emulators.free_port()
            started.append(start_function("receive_push", push_port, env, log_dir=work))
            noop_dir = work / "noop"
            noop_dir.mkdir()
            (noop_dir / "main.py").write_text(_NOOP_SOURCE)
            noop_port = emulators.free_port()
            started.append(
                emulators.start_process(
                    "noop",
                    [
                        str(
                            Path(__import__("sys").executable).with_name(
                                "functions-framework"
                            )
                        ),
                        "--target=noop",
                        f"--source={noop_dir / 'main.py'}",
                        "--host=127.0.0.1",
                        f"--port={noop_port}",
                    ],
                    address=f"127.0.0.1:{noop_port}",
                    log_dir=work,
                )
            )
            emulators.wait_for_tcp(noop_port, timeout_s=60, proc=started[-1])

            bodies = [_envelope(n) for n in range(args.pushes)]
            warmup = [_envelope(900_000 + n) for n in range(50)]
            _time_posts(f"http://127.0.0.1:{push_port}/", warmup)
            _time_posts(f"http://127.0.0.1:{noop_port}/", warmup)

            base_ms, base_status = _time_posts(f"http://127.0.0.1:{noop_port}/", bodies)
            new_ms, new_status = _time_posts(f"http://127.0.0.1:{push_port}/", bodies)
            dup_ms, dup_status = _time_posts(f"http://127.0.0.1:{push_port}/", bodies)
            rpcs = _count_rpcs(env, min(args.pushes, 200))
        finally:
            for proc in reversed(started):
                proc.stop()

    rows = [
        ("baseline: no-op function", base_ms, base_status),
        ("receive_push: new event", new_ms, new_status),
        ("receive_push: duplicate", dup_ms, dup_status),
    ]
    base = _percentiles(base_ms)
    print(f"ACK latency over {args.pushes} sequential local pushes (ms)")
    print(f"{'case':28} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  statuses")
    for name, samples, statuses in rows:
        p = _percentiles(samples)
        print(
            f"{name:28} {p['p50']:8.2f} {p['p90']:8.2f} {p['p99']:8.2f} {p['max']:8.2f}"
            f"  {dict(statuses)}"
        )
    new = _percentiles(new_ms)
    print(
        f"receive_push over baseline: p50 +{new['p50'] - base['p50']:.2f} ms,"
        f" p99 +{new['p99'] - base['p99']:.2f} ms"
    )
    print("calls per push on the ACK path:")
    for phase, per_push in rpcs.items():
        print(f"  {phase:10} " + ", ".join(f"{k}={v:g}" for k, v in per_push.items()))
    return 0


def _pause(tasks_host: str, queue_path: str) -> None:
    from inboxsync.adapters.cloud_tasks import make_tasks_client

    make_tasks_client(tasks_host).pause_queue(name=queue_path)


if __name__ == "__main__":
    raise SystemExit(main())
