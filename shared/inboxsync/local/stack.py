"""The whole pipeline as local processes on 127.0.0.1.

Starts the Firestore, Pub/Sub and Cloud Tasks emulators, the Gmail sandbox and
every function under functions-framework; wires the Pub/Sub topic, the push
subscription and the queue; writes a status file that `inboxsync local status`
and scripts read. `stop()` ends every process it started, newest first.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from inboxsync.errors import ConfigError
from inboxsync.local import emulators
from inboxsync.local.emulators import EmulatorError, ManagedProcess

__all__ = [
    "DEFAULT_PORTS",
    "LocalStack",
    "StackAlreadyRunning",
    "StackStatus",
    "pubsub_put",
    "read_status",
    "repo_root",
    "start_function",
    "wait_until",
]

HOST = "127.0.0.1"
LOCATION = "local"
QUEUE = "inboxsync-sync"
TOPIC = "gmail-notifications"
SUBSCRIPTION = "gmail-push"
STATUS_FILE = "stack.json"

# Fixed ports for `make run`, so URLs stay the same between runs; tests pass
# base_port=0 to get free ones.
DEFAULT_PORTS = {
    "receive_push": 8681,
    "run_sync": 8682,
    "gmail_sandbox": 8683,
    "firestore": 8684,
    "pubsub": 8685,
    "tasks": 8686,
    "renew_watches": 8687,
}


class StackAlreadyRunning(ConfigError):
    """A local stack recorded in the status file is still alive."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def default_state_dir() -> Path:
    return Path(os.environ.get("INBOXSYNC_STACK_DIR", repo_root() / ".local-stack"))


@dataclass
class StackStatus:
    """What `inboxsync local status --json` prints: where each part listens."""

    project: str
    push_url: str
    sync_url: str
    renew_url: str
    gmail_api_url: str
    firestore_emulator_host: str
    pubsub_emulator_host: str
    tasks_emulator_host: str
    topic: str
    subscription: str
    queue: str
    rules_file: str
    log_dir: str
    pid: int
    processes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def read_status(state_dir: Path | None = None) -> StackStatus | None:
    """The running stack's status, or None when no live stack is recorded."""
    path = (state_dir or default_state_dir()) / STATUS_FILE
    try:
        data = json.loads(path.read_text())
        status = StackStatus(**data)
    except (OSError, ValueError, TypeError):
        return None
    return status if _pid_alive(status.pid) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_port_free(name: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves do: closed connections in TIME_WAIT on the
        # port do not make it busy, a listening socket does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            raise EmulatorError(
                f"port {port} on {HOST} (for {name}) is already in use; stop what"
                " holds it, or start with --base-port 0 to pick free ports"
            ) from None


class LocalStack:
    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        project: str = "inboxsync-local",
        rules_file: Path | None = None,
        base_port: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.state_dir = state_dir or default_state_dir()
        self.log_dir = self.state_dir / "logs"
        self.project = project
        self.rules_file = rules_file or Path(__file__).with_name("rules.local.toml")
        self.extra_env = extra_env or {}
        self._processes: list[ManagedProcess] = []
        self._ports = self._choose_ports(base_port)
        self.status: StackStatus | None = None

    @staticmethod
    def _choose_ports(base_port: int | None) -> dict[str, int]:
        if base_port is None:
            return dict(DEFAULT_PORTS)
        if base_port == 0:
            return {name: emulators.free_port() for name in DEFAULT_PORTS}
        return {name: base_port + n for n, name in enumerate(DEFAULT_PORTS)}

    # -- lifecycle -------------------------------------------------------

    def start(self) -> StackStatus:
        running = read_status(self.state_dir)
        if running is not None:
            raise StackAlreadyRunning(
                f"a local stack is already running (pid {running.pid}, push URL"
                f" {running.push_url}); stop it first (Ctrl-C in its terminal)"
            )
        self._check_rules()
        for name, port in self._ports.items():
            _check_port_free(name, port)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        return self.status  # type: ignore[return-value]

    def _check_rules(self) -> None:
        """Refuse a bad rules file now, not as a 500 from run_sync's first task."""
        import requests as http

        from inboxsync.sync.actions import BuildContext, build_actions
        from inboxsync.sync.build import load_checked_rules

        if not self.rules_file.exists():
            raise ConfigError(f"rules file {self.rules_file} does not exist")
        rules = load_checked_rules(str(self.rules_file))
        environ = {**os.environ, **self.extra_env}
        with http.Session() as session:
            build_actions(rules, BuildContext(environ=environ, session=session))

    def _start_all(self) -> None:
        ports = self._ports
        queue_path = f"projects/{self.project}/locations/{LOCATION}/queues/{QUEUE}"
        firestore = emulators.start_firestore(ports["firestore"], log_dir=self.log_dir)
        self._processes.append(firestore)
        pubsub = emulators.start_pubsub(ports["pubsub"], log_dir=self.log_dir)
        self._processes.append(pubsub)
        tasks = emulators.start_tasks(
            ports["tasks"], queues=[queue_path], log_dir=self.log_dir
        )
        self._processes.append(tasks)

        sandbox = emulators.start_process(
            "gmail-sandbox",
            [
                sys.executable,
                "-m",
                "inboxsync.local.sandbox",
                f"--port={ports['gmail_sandbox']}",
                f"--pubsub-host={pubsub.address}",
            ],
            address=f"{HOST}:{ports['gmail_sandbox']}",
            log_dir=self.log_dir,
        )
        self._processes.append(sandbox)
        gmail_url = f"http://{HOST}:{ports['gmail_sandbox']}/"
        emulators.wait_for_tcp(ports["gmail_sandbox"], timeout_s=30, proc=sandbox)

        push_url = f"http://{HOST}:{ports['receive_push']}/"
        sync_url = f"http://{HOST}:{ports['run_sync']}/"
        topic = f"projects/{self.project}/topics/{TOPIC}"
        env = {
            "INBOXSYNC_PROJECT": self.project,
            "INBOXSYNC_LOCAL_MODE": "true",
            "FIRESTORE_EMULATOR_HOST": firestore.address,
            "CLOUD_TASKS_EMULATOR_HOST": tasks.address,
            "PUBSUB_EMULATOR_HOST": pubsub.address,
            "INBOXSYNC_TASKS_LOCATION": LOCATION,
            "INBOXSYNC_TASKS_QUEUE": QUEUE,
            "INBOXSYNC_SYNC_URL": sync_url,
            "INBOXSYNC_GMAIL_API_URL": gmail_url,
            "INBOXSYNC_RULES_FILE": str(self.rules_file),
            "INBOXSYNC_GMAIL_TOPIC": topic,
            **self.extra_env,
        }
        for name in ("receive_push", "run_sync", "renew_watches"):
            self._processes.append(
                start_function(name, ports[name], env, log_dir=self.log_dir)
            )

        subscription = f"projects/{self.project}/subscriptions/{SUBSCRIPTION}"
        pubsub_put(pubsub.address, topic, {})
        pubsub_put(
            pubsub.address,
            subscription,
            {
                "topic": topic,
                "pushConfig": {"pushEndpoint": push_url},
                "ackDeadlineSeconds": 10,
            },
        )

        self.status = StackStatus(
            project=self.project,
            push_url=push_url,
            sync_url=sync_url,
            renew_url=f"http://{HOST}:{ports['renew_watches']}/",
            gmail_api_url=gmail_url,
            firestore_emulator_host=firestore.address,
            pubsub_emulator_host=pubsub.address,
            tasks_emulator_host=tasks.address,
            topic=topic,
            subscription=subscription,
            queue=queue_path,
            rules_file=str(self.rules_file),
            log_dir=str(self.log_dir),
            pid=os.getpid(),
            processes={p.name: p.pid for p in self._processes},
        )
        status_path = self.state_dir / STATUS_FILE
        tmp = status_path.with_suffix(".tmp")
        tmp.write_text(self.status.to_json())
        tmp.replace(status_path)

    def stop(self) -> None:
        """Stop everything this stack started (newest first); idempotent."""
        while self._processes:
            self._processes.pop().stop()
        status_path = self.state_dir / STATUS_FILE
        if self.status is not None and status_path.exists():
            try:
                if json.loads(status_path.read_text()).get("pid") == os.getpid():
                    status_path.unlink()
            except (OSError, ValueError):
                pass
        self.status = None

    def dead_processes(self) -> list[str]:
        return [p.name for p in self._processes if not p.alive()]

    @contextmanager
    def running(self) -> Iterator[StackStatus]:
        """Start, yield the status, stop even on Ctrl-C or an error."""
        previous = signal.getsignal(signal.SIGTERM)

        def _terminate(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _terminate)
        try:
            yield self.start()
        finally:
            self.stop()
            signal.signal(signal.SIGTERM, previous)


def start_function(
    name: str, port: int, env: dict[str, str], *, log_dir: Path | None = None
) -> ManagedProcess:
    """One function under functions-framework on 127.0.0.1:port."""
    source = repo_root() / "functions" / name / "main.py"
    if not source.exists():
        raise ConfigError(f"function source {source} does not exist")
    binary = Path(sys.executable).with_name("functions-framework")
    proc = emulators.start_process(
        name,
        [
            str(binary),
            f"--target={name}",
            f"--source={source}",
            f"--host={HOST}",
            f"--port={port}",
        ],
        address=f"{HOST}:{port}",
        log_dir=log_dir,
        env=env,
    )
    emulators.wait_for_tcp(port, timeout_s=60, proc=proc)
    return proc


def pubsub_put(host: str, path: str, body: dict[str, Any]) -> None:
    response = requests.put(f"http://{host}/v1/{path}", json=body, timeout=10)
    if response.status_code not in (200, 409):
        raise EmulatorError(
            f"Pub/Sub emulator refused to create {path}: {response.status_code}"
            f" {response.text[:200]}"
        )


def wait_until(predicate: Any, *, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll predicate() until it is truthy or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
