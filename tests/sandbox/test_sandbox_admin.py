"""The admin API, persistence across restarts, and the command-line entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from gmail_sandbox_helpers import ALICE, BOB, TOPIC, gmail_service

from inboxsync.local.sandbox import (
    FakeClock,
    SandboxAdmin,
    SandboxAdminError,
    SandboxServer,
    SandboxState,
)

REPO = Path(__file__).resolve().parents[2]


def test_create_and_list_mailboxes(sandbox_admin: SandboxAdmin) -> None:
    created = sandbox_admin.create_mailbox("Bob@Example.com")
    sandbox_admin.create_mailbox(ALICE)

    listed = sandbox_admin.list_mailboxes()

    assert created["address"] == BOB
    assert created["messages_total"] == 0
    assert created["watch"] is None
    assert [m["address"] for m in listed] == [ALICE, BOB]


def test_mailbox_history_ids_differ_per_address_and_repeat_per_seed(
    fake_clock: FakeClock,
) -> None:
    first = SandboxState(clock=fake_clock, seed=3)
    again = SandboxState(clock=fake_clock, seed=3)

    a = first.create_mailbox(ALICE)["history_id"]
    b = first.create_mailbox(BOB)["history_id"]
    a_again = again.create_mailbox(ALICE)["history_id"]

    assert a != b
    assert a == a_again


@pytest.mark.parametrize(
    ("call", "status"),
    [
        (lambda admin: admin.create_mailbox(ALICE), 409),
        (lambda admin: admin.create_mailbox("not-an-address"), 400),
        (lambda admin: admin.deliver(BOB), 404),
        (lambda admin: admin.delete_message(ALICE, "1234"), 404),
        (lambda admin: admin.deliver(ALICE, count=0), 400),
        (lambda admin: admin.deliver(ALICE, raw="!!!"), 400),
        (lambda admin: admin.deliver(ALICE, attachments=[{"filename": "x"}]), 400),
        (lambda admin: admin.deliver(ALICE, labels="INBOX"), 400),  # type: ignore[arg-type]
        (lambda admin: admin.expire_history(ALICE, before_id=10**12), 400),
        (lambda admin: admin.expire_history(BOB), 404),
        (lambda admin: admin.advance_clock(-1), 400),
        (lambda admin: admin.get_mailbox(BOB), 404),
    ],
)
def test_admin_errors(
    sandbox_admin: SandboxAdmin, alice: str, call: Any, status: int
) -> None:
    with pytest.raises(SandboxAdminError) as caught:
        call(sandbox_admin)

    assert caught.value.status == status
    assert caught.value.message


def test_unknown_admin_path_and_wrong_method(sandbox: SandboxServer) -> None:
    missing = requests.get(f"{sandbox.url}sandbox/v1/nothing", timeout=5)
    wrong = requests.put(f"{sandbox.url}sandbox/v1/mailboxes", json={}, timeout=5)
    bad_json = requests.post(
        f"{sandbox.url}sandbox/v1/mailboxes",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )

    assert missing.status_code == 404
    assert wrong.status_code == 405
    assert bad_json.status_code == 400
    assert "JSON" in bad_json.json()["error"]["message"]


def test_deliver_count_returns_every_id_and_the_last_history_id(
    sandbox_admin: SandboxAdmin, alice: str
) -> None:
    delivery = sandbox_admin.deliver(alice, count=5, labels=["INBOX", "Newsletters"])

    mailbox = sandbox_admin.get_mailbox(alice)

    assert len(set(delivery.message_ids)) == 5
    assert all(len(m) == 16 for m in delivery.message_ids)
    assert delivery.history_id == mailbox["history_id"]
    assert delivery.label_ids == ["INBOX", "Label_1"]
    assert mailbox["messages_total"] == 5


def test_advance_clock_moves_internal_dates(
    sandbox_admin: SandboxAdmin, alice: str, gmail: Any
) -> None:
    before = sandbox_admin.now_ms()

    after = sandbox_admin.advance_clock(90)
    message_id = sandbox_admin.deliver(alice).message_ids[0]

    message = (
        gmail.users()
        .messages()
        .get(userId="me", id=message_id, format="minimal")
        .execute()
    )
    assert after - before == 90_000
    assert message["internalDate"] == str(after)


def test_reset_forgets_everything(
    sandbox_admin: SandboxAdmin, alice: str, gmail: Any
) -> None:
    gmail.users().watch(userId="me", body={"topicName": TOPIC}).execute()
    sandbox_admin.inject_fault("getProfile", status=500)
    sandbox_admin.advance_clock(100)

    sandbox_admin.reset()

    assert sandbox_admin.list_mailboxes() == []
    assert sandbox_admin.list_faults() == []
    assert sandbox_admin.notifications() == []
    assert sandbox_admin.stats()["calls"] == {}
    assert sandbox_admin.health() is True


def test_state_survives_a_restart(tmp_path: Path, fake_clock: FakeClock) -> None:
    state_file = tmp_path / "sandbox.json"
    first = SandboxServer(
        SandboxState(clock=fake_clock, seed=7), state_file=state_file
    ).start()
    admin = SandboxAdmin(first.url)
    admin.create_mailbox(ALICE)
    start = admin.get_mailbox(ALICE)["history_id"]
    kept, deleted = admin.deliver(
        ALICE,
        labels=["INBOX", "Travel"],
        attachments=[
            {"filename": "ticket.pdf", "content_type": "application/pdf", "size": 10}
        ],
        count=2,
    ).message_ids
    admin.delete_message(ALICE, deleted)
    admin.advance_clock(30)
    service = gmail_service(first, ALICE)
    service.users().watch(userId="me", body={"topicName": TOPIC}).execute()
    before = _observe(service, start)
    service.close()
    admin.close()
    first.stop()

    second = SandboxServer(
        SandboxState(clock=fake_clock, seed=7), state_file=state_file
    ).start()
    service = gmail_service(second, ALICE)
    after = _observe(service, start)
    new_admin = SandboxAdmin(second.url)
    next_delivery = new_admin.deliver(ALICE)
    mailbox = new_admin.get_mailbox(ALICE)
    service.close()
    new_admin.close()
    second.stop()

    assert after == before
    assert before["messages"] == [kept]
    assert int(next_delivery.history_id) > int(before["profile"]["historyId"])
    assert next_delivery.message_ids[0] not in (kept, deleted)
    assert mailbox["watch"]["topic"] == TOPIC
    assert [p.name for p in tmp_path.iterdir()] == ["sandbox.json"]


def _observe(service: Any, start: str) -> dict[str, Any]:
    users = service.users()
    listed = users.messages().list(userId="me").execute()
    message_ids = [m["id"] for m in listed["messages"]]
    return {
        "profile": users.getProfile(userId="me").execute(),
        "labels": users.labels().list(userId="me").execute(),
        "history": users.history().list(userId="me", startHistoryId=start).execute(),
        "messages": message_ids,
        "full": [
            users.messages().get(userId="me", id=m).execute() for m in message_ids
        ],
        "raw": [
            users.messages().get(userId="me", id=m, format="raw").execute()
            for m in message_ids
        ],
    }


def test_state_file_is_plain_json(tmp_path: Path, fake_clock: FakeClock) -> None:
    state_file = tmp_path / "nested" / "state.json"
    server = SandboxServer(
        SandboxState(clock=fake_clock), state_file=state_file
    ).start()
    admin = SandboxAdmin(server.url)

    admin.create_mailbox(ALICE)
    admin.deliver(ALICE)
    saved = json.loads(state_file.read_text())
    admin.close()
    server.stop()

    assert saved["format"] == "inboxsync-sandbox-state/1"
    assert saved["mailboxes"][0]["address"] == ALICE
    assert len(saved["mailboxes"][0]["messages"]) == 1


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "shared")}
    process = subprocess.Popen(
        [sys.executable, "-m", "inboxsync.local.sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    return process, ready


@pytest.mark.timeout(60)
def test_command_line_runs_prints_its_url_and_persists(tmp_path: Path) -> None:
    state_file = tmp_path / "cli-state.json"

    process, ready = _start_cli("--state-file", str(state_file), "--seed", "5")
    try:
        admin = SandboxAdmin(ready["gmail_api_url"])
        admin.create_mailbox(ALICE)
        history_id = admin.deliver(ALICE).history_id
        admin.close()
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=10)

    restarted, ready_again = _start_cli("--state-file", str(state_file))
    try:
        admin = SandboxAdmin(ready_again["gmail_api_url"])
        mailbox = admin.get_mailbox(ALICE)
        admin.close()
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=10)

    assert exit_code == 0
    assert ready["gmail_api_url"] == f"http://127.0.0.1:{ready['port']}/"
    assert ready["batch_url"] == f"{ready['gmail_api_url']}batch/gmail/v1"
    assert mailbox["history_id"] == history_id
