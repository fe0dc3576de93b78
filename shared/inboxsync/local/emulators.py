"""Start and stop the local emulators as child processes on 127.0.0.1.

Used by the test fixtures and by `inboxsync local run`. Each emulator is one
process we started ourselves (java is launched directly, not through the gcloud
wrapper, so the PID we hold is the JVM), and `stop()` ends exactly that
process group.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

from inboxsync.errors import ConfigError

__all__ = [
    "EmulatorError",
    "ManagedProcess",
    "free_port",
    "gcloud_platform_dir",
    "start_firestore",
    "start_process",
    "start_pubsub",
    "start_tasks",
    "wait_for_http",
    "wait_for_tcp",
]

_HOST = "127.0.0.1"
_DEFAULT_SDK_ROOTS = ("/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk")


class EmulatorError(ConfigError):
    """An emulator is missing or did not come up; the message says how to fix it."""


@dataclass
class ManagedProcess:
    """A child process we started, with where it listens and where it logs."""

    name: str
    popen: subprocess.Popen[bytes]
    address: str
    log_path: Path | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the process (and its own process group); idempotent."""
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_tcp(port: int, *, timeout_s: float, proc: ManagedProcess) -> None:
    _wait(lambda: _tcp_open(port), timeout_s=timeout_s, proc=proc)


def wait_for_http(url: str, *, timeout_s: float, proc: ManagedProcess) -> None:
    _wait(lambda: _http_ok(url), timeout_s=timeout_s, proc=proc)


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False


def _wait(ready: Callable[[], bool], *, timeout_s: float, proc: ManagedProcess) -> None:
    """Wait until ready; a process that does not get there is stopped here.

    The caller only learns of the process once it is ready, so on a timeout, an
    early exit or an interrupt (Ctrl-C) nobody else could stop it.
    """
    try:
        _wait_or_fail(ready, timeout_s=timeout_s, proc=proc)
    except BaseException:
        proc.stop()
        raise


def _wait_or_fail(
    ready: Callable[[], bool], *, timeout_s: float, proc: ManagedProcess
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise EmulatorError(
                f"{proc.name} exited with code {proc.popen.returncode} during start-up;"
                f" its log ends with:\n{proc.log_tail()}"
            )
        if ready():
            return
        time.sleep(0.1)
    raise EmulatorError(
        f"{proc.name} did not answer on {proc.address} within {timeout_s:.0f} s;"
        f" its log ends with:\n{proc.log_tail()}"
    )


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    address: str,
    log_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> ManagedProcess:
    """Start argv in its own session, its output going to log_dir/<name>.log."""
    log_file: IO[bytes] | None = None
    log_path: Path | None = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        log_file = log_path.open("wb")
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log_file if log_file is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    return ManagedProcess(name, popen, address, log_path, log_file)


def gcloud_platform_dir() -> Path:
    """The gcloud SDK's platform/ folder, where the emulator jars live."""
    candidates: list[Path] = []
    if root := os.environ.get("CLOUDSDK_ROOT_DIR"):
        candidates.append(Path(root))
    gcloud = shutil.which("gcloud")
    if gcloud:
        candidates.append(Path(gcloud).resolve().parent.parent)
    candidates.extend(Path(p) for p in _DEFAULT_SDK_ROOTS)
    for root_dir in candidates:
        if (root_dir / "platform").is_dir():
            return root_dir / "platform"
    raise EmulatorError(
        "the Google Cloud CLI was not found (no gcloud on PATH, no CLOUDSDK_ROOT_DIR);"
        " install the packages google-cloud-cli-firestore-emulator and"
        " google-cloud-cli-pubsub-emulator"
    )


def _java() -> str:
    java = os.environ.get("JAVA") or shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise EmulatorError(
            f"java was not found ({java or 'not on PATH'}); the Firestore and"
            " Pub/Sub emulators need Java 17 or newer"
            " (Debian: apt-get install openjdk-17-jre-headless)"
        )
    return java


def _jar(pattern: str, package: str) -> str:
    matches = sorted(glob.glob(str(gcloud_platform_dir() / pattern)))
    if not matches:
        raise EmulatorError(
            f"{pattern} was not found under the gcloud SDK; install the package"
            f" {package}"
        )
    return matches[-1]


def start_firestore(
    port: int | None = None, *, log_dir: Path | None = None, timeout_s: float = 60
) -> ManagedProcess:
    """Google's Firestore emulator (native mode) on 127.0.0.1."""
    port = port or free_port()
    jar = _jar(
        "cloud-firestore-emulator/cloud-firestore-emulator.jar",
        "google-cloud-cli-firestore-emulator",
    )
    argv = [
        _java(),
        "-Duser.language=en",
        "-cp",
        jar,
        "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
        "start",
        f"--host={_HOST}",
        f"--port={port}",
    ]
    proc = start_process(
        "firestore-emulator", argv, address=f"{_HOST}:{port}", log_dir=log_dir
    )
    wait_for_http(f"http://{_HOST}:{port}/", timeout_s=timeout_s, proc=proc)
    return proc


def start_pubsub(
    port: int | None = None, *, log_dir: Path | None = None, timeout_s: float = 60
) -> ManagedProcess:
    """Google's Pub/Sub emulator on 127.0.0.1."""
    port = port or free_port()
    jar = _jar(
        "pubsub-emulator/lib/cloud-pubsub-emulator-*.jar",
        "google-cloud-cli-pubsub-emulator",
    )
    argv = [_java(), "-jar", jar, f"--host={_HOST}", f"--port={port}"]
    proc = start_process(
        "pubsub-emulator", argv, address=f"{_HOST}:{port}", log_dir=log_dir
    )
    wait_for_http(f"http://{_HOST}:{port}/", timeout_s=timeout_s, proc=proc)
    return proc


def tasks_python() -> str:
    """The interpreter of the Cloud Tasks emulator's own virtualenv."""
    python = os.environ.get("INBOXSYNC_TASKS_PYTHON")
    if not python:
        venv = Path(__file__).resolve().parents[3] / ".venv-tasks" / "bin" / "python"
        python = str(venv)
    if not Path(python).exists():
        raise EmulatorError(
            f"the Cloud Tasks emulator's virtualenv was not found at {python};"
            " run `make install` (or set INBOXSYNC_TASKS_PYTHON)"
        )
    return python


def start_tasks(
    port: int | None = None,
    *,
    queues: Sequence[str] = (),
    log_dir: Path | None = None,
    timeout_s: float = 60,
) -> ManagedProcess:
    """The Cloud Tasks emulator (PyPI gcloud-tasks-emulator) on 127.0.0.1."""
    port = port or free_port()
    launcher = Path(__file__).with_name("tasks_emulator_main.py")
    argv = [tasks_python(), "-u", str(launcher), f"--port={port}"]
    argv += [f"--queue={queue}" for queue in queues]
    proc = start_process(
        "tasks-emulator",
        argv,
        address=f"{_HOST}:{port}",
        log_dir=log_dir,
        env={"PYTHONWARNINGS": "ignore"},
    )
    wait_for_tcp(port, timeout_s=timeout_s, proc=proc)
    return proc


if __name__ == "__main__":  # pragma: no cover - manual smoke check
    started = [start_firestore(), start_pubsub(), start_tasks()]
    print(" ".join(f"{p.name}={p.address}" for p in started), file=sys.stderr)
    for p in started:
        p.stop()
