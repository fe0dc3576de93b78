"""Run the Gmail sandbox: `python -m inboxsync.local.sandbox --port N`.

Prints one JSON line `{"gmail_api_url": ...}` on stdout once it accepts
requests, logs JSON lines on stderr, and stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from types import FrameType

from .publisher import Publisher, PubsubEmulatorPublisher, RecordingPublisher
from .server import SandboxServer
from .state import SandboxState


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"severity": record.levelname, "message": record.getMessage()}
        for key in ("http_method", "status", "duration_ms", "method", "error"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m inboxsync.local.sandbox", description=__doc__
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--state-file", help="load state from and save it to this JSON file"
    )
    parser.add_argument(
        "--pubsub-host", help="Pub/Sub emulator HOST:PORT for notifications"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of history id gaps and ids"
    )
    parser.add_argument(
        "--history-retention-hours",
        type=float,
        default=7 * 24,
        help="history older than this answers 404 (default one week)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])

    publisher: Publisher = (
        PubsubEmulatorPublisher(args.pubsub_host)
        if args.pubsub_host
        else RecordingPublisher()
    )
    state = SandboxState(
        seed=args.seed, history_retention_s=args.history_retention_hours * 3600
    )
    server = SandboxServer(
        state, port=args.port, publisher=publisher, state_file=args.state_file
    )

    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    server.start()
    print(
        json.dumps(
            {
                "gmail_api_url": server.url,
                "batch_url": server.batch_url,
                "port": server.port,
            }
        ),
        flush=True,
    )
    stopping.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
