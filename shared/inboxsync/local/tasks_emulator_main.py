"""Start the Cloud Tasks emulator bound to loopback, with task-name dedup.

Runs under the emulator's own virtualenv (it pins an older protobuf), so this
file imports nothing from inboxsync. Two gaps of the emulator are closed here
so that local runs behave like the real service:

* it binds every interface; we bind the host we are given (127.0.0.1);
* it accepts the same task name twice; the real service answers ALREADY_EXISTS
  for a name used in the last hour or so, and the push receiver relies on that.
  Names are remembered for the life of the process.

Usage: python tasks_emulator_main.py --port P [--queue QUEUE_PATH]...
"""

import argparse
import signal
import sys
import threading
import time

from gcloud_tasks_emulator import server as emulator
from google.api_core.exceptions import AlreadyExists


def _patch(host):
    original_create_task = emulator.QueueState.create_task
    seen = set()
    lock = threading.Lock()

    def create_task(self, queue, task):
        if task.name:
            with lock:
                if task.name in seen:
                    raise AlreadyExists(f"Requested entity already exists: {task.name}")
                seen.add(task.name)
        return original_create_task(self, queue, task)

    emulator.QueueState.create_task = create_task

    def api_run(self):
        from concurrent import futures

        import grpc

        self._httpd = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        emulator.add_CloudTasksServicer_to_server(
            emulator.Greeter(self._state), self._httpd
        )
        self._httpd.add_insecure_port(f"{host}:{self._port}")
        self._httpd.start()
        self._is_running.set()
        while self._is_running.is_set():
            time.sleep(0.1)

    emulator.APIThread.run = api_run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queue", action="append", default=[])
    args = parser.parse_args()

    _patch(args.host)
    server = emulator.create_server(
        args.host, args.port, default_queue_names=args.queue
    )

    def stop(*_):
        server.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.start()
    print(f"tasks emulator listening on {args.host}:{args.port}", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
