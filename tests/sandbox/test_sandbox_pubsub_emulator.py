"""Notifications published through a real Pub/Sub emulator started by this test."""

from __future__ import annotations

import base64
import glob
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from gmail_sandbox_helpers import ALICE, gmail_service

from inboxsync.local.sandbox import (
    FakeClock,
    PublishError,
    PubsubEmulatorPublisher,
    SandboxAdmin,
    SandboxServer,
    SandboxState,
)

_JARS = (
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar"
)
_START_TIMEOUT_S = 30.0

pytestmark = pytest.mark.emulators


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the emulator's jar directly, so the PID we stop is the java process."""
    jars = sorted(glob.glob(_JARS))
    java = shutil.which("java")
    if not jars or java is None:
        pytest.skip("Pub/Sub emulator jar or java not installed")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("pubsub") / "pubsub-emulator.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [java, "-jar", jars[-1], "--host=127.0.0.1", f"--port={port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    host = f"127.0.0.1:{port}"
    try:
        _wait_until_ready(process, host)
        yield host
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _wait_until_ready(process: subprocess.Popen[bytes], host: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Pub/Sub emulator exited with {process.returncode}")
        try:
            if requests.get(f"http://{host}/v1/projects/p/topics", timeout=5).ok:
                return
        except (requests.ConnectionError, requests.Timeout):
            # Refused before it listens; slow to answer while the JVM warms up.
            pass
        # Polling for a process to come up, not timing anything under test.
        time.sleep(0.1)
    raise RuntimeError("Pub/Sub emulator did not answer in time")


def _pull(host: str, subscription: str, expected: int) -> list[dict[str, Any]]:
    """Pull until `expected` messages arrived; a pull may return fewer than exist."""
    received: list[dict[str, Any]] = []
    for _ in range(20):
        response = requests.post(
            f"http://{host}/v1/{subscription}:pull",
            json={"maxMessages": 10},
            timeout=10,
        )
        response.raise_for_status()
        received += response.json().get("receivedMessages", [])
        if len(received) >= expected:
            break
    return received


def test_watch_and_delivery_publish_to_the_emulator(pubsub_emulator: str) -> None:
    topic = "projects/p/topics/gmail-push"
    subscription = "projects/p/subscriptions/gmail-pull"
    base = f"http://{pubsub_emulator}/v1"
    requests.put(f"{base}/{topic}", json={}, timeout=10).raise_for_status()
    requests.put(
        f"{base}/{subscription}", json={"topic": topic}, timeout=10
    ).raise_for_status()
    clock = FakeClock()
    server = SandboxServer(
        SandboxState(clock=clock), publisher=PubsubEmulatorPublisher(pubsub_emulator)
    ).start()
    admin = SandboxAdmin(server.url)
    admin.create_mailbox(ALICE)
    service = gmail_service(server, ALICE)

    watched = service.users().watch(userId="me", body={"topicName": topic}).execute()
    clock.advance(5)
    delivered = admin.deliver(ALICE)
    received = _pull(pubsub_emulator, subscription, expected=2)
    logged = admin.notifications()
    service.close()
    admin.close()
    server.stop()

    payloads = [json.loads(base64.b64decode(r["message"]["data"])) for r in received]
    assert sorted(payloads, key=lambda p: p["historyId"]) == [
        {"emailAddress": ALICE, "historyId": int(watched["historyId"])},
        {"emailAddress": ALICE, "historyId": int(delivered.history_id)},
    ]
    assert {r["message"]["messageId"] for r in received} == {
        n["message_id"] for n in logged
    }


def test_publishing_to_a_missing_topic_raises(pubsub_emulator: str) -> None:
    publisher = PubsubEmulatorPublisher(pubsub_emulator)

    with pytest.raises(PublishError) as caught:
        publisher.publish("projects/p/topics/does-not-exist", b"{}")

    assert "404" in str(caught.value)
