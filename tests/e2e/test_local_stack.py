"""The whole local stack as separate processes, driven like a user would.

Emulators, the Gmail sandbox and both functions run as their own processes;
the test delivers mail, injects duplicate notifications and checks that every
message was processed and every action done exactly once.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from inboxsync.local.control import StackClient
from inboxsync.local.stack import LocalStack, StackStatus, wait_until

pytestmark = [pytest.mark.emulators, pytest.mark.e2e]

SECRET = "whsec_" + base64.b64encode(b"inboxsync-e2e-signing-key-32byte").decode()
MAILBOXES = ["ann@example.com", "ben@example.org", "cat@example.net"]


class WebhookSink:
    """A real HTTP endpoint that verifies Standard Webhooks signatures."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.bad_signatures = 0
        sink = self
        verifier = Webhook(SECRET)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    event = verifier.verify(body, dict(self.headers.items()))
                except Exception:
                    sink.bad_signatures += 1
                    self.send_response(401)
                else:
                    event["webhook_id"] = self.headers["webhook-id"]
                    sink.deliveries.append(event)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink()
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack(
    sink: WebhookSink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalStack, StackStatus]]:
    work = tmp_path_factory.mktemp("stack")
    rules = work / "rules.toml"
    rules.write_text(
        f"""
[actions.keep]
type = "record"

[actions.hook]
type = "forward"
url = "{sink.url}"
secret_env = "E2E_FORWARD_SECRET"

[actions.star]
type = "label"
label_ids = ["STARRED"]

[[rules]]
name = "everything-in-inbox"
actions = ["keep", "hook"]
[rules.match]
labels = ["INBOX"]

[[rules]]
name = "urgent"
actions = ["star", "hook"]
[rules.match]
subject = "urgent"
"""
    )
    local = LocalStack(
        state_dir=work / "state",
        base_port=0,
        rules_file=rules,
        extra_env={"E2E_FORWARD_SECRET": SECRET},
    )
    status = local.start()
    try:
        yield local, status
    finally:
        pids = list(status.processes.values())
        local.stop()
        for pid in pids:  # nothing the stack started may outlive it
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def cli(status: StackStatus, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INBOXSYNC_STACK_DIR": str(Path(status.log_dir).parent)}
    return subprocess.run(
        [sys.executable, "-m", "inboxsync.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_status_json_describes_the_running_stack(
    stack: tuple[LocalStack, StackStatus],
) -> None:
    _, status = stack

    result = cli(status, "local", "status", "--json")

    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    for key in (
        "project",
        "push_url",
        "sync_url",
        "renew_url",
        "gmail_api_url",
        "firestore_emulator_host",
        "pubsub_emulator_host",
        "tasks_emulator_host",
        "topic",
        "subscription",
        "queue",
        "rules_file",
    ):
        assert described[key] == getattr(status, key)


def test_every_message_processed_and_every_action_done_once(
    stack: tuple[LocalStack, StackStatus], sink: WebhookSink
) -> None:
    _, status = stack
    client = StackClient(status)
    try:
        for address in MAILBOXES:
            added = cli(status, "sandbox", "add-mailbox", address)
            assert added.returncode == 0, added.stderr

        delivered: dict[str, str] = {}
        for round_number in range(4):
            # Round 0 goes through the CLI, the rest through the same client
            # code in-process (a CLI call costs a Python start-up).
            by_cli = round_number == 0
            for address in MAILBOXES:
                subject = (
                    "URGENT outage" if round_number == 1 else f"note {round_number}"
                )
                if by_cli:
                    out = cli(
                        status,
                        "sandbox",
                        "deliver",
                        address,
                        "--subject",
                        subject,
                        "--count",
                        "2",
                    )
                    assert out.returncode == 0, out.stderr
                    new_ids = out.stdout.split()
                else:
                    new_ids = client.deliver(address, subject=subject, count=2)
                delivered.update({gmail_id: address for gmail_id in new_ids})
            # Duplicate notifications through Pub/Sub (Gmail may repeat itself)
            # and a redelivered push with the same Pub/Sub message id.
            for address in MAILBOXES:
                for _ in range(2):
                    if by_cli:
                        assert (
                            cli(status, "sandbox", "publish", address).returncode == 0
                        )
                    else:
                        client.publish(address)
            data = json.dumps({"emailAddress": MAILBOXES[0], "historyId": 1})
            for _ in range(2):
                if by_cli:
                    pushed = cli(
                        status,
                        "local",
                        "push",
                        "--data",
                        data,
                        "--message-id",
                        "again-0",
                    )
                    assert pushed.stdout.strip() == "204"
                else:
                    assert client.push(data, f"again-{round_number}").status_code == 204
        # Gmail drops notifications beyond one per second per mailbox, so the
        # last deliveries may have none: one more notification each, a second
        # later, stands for the next mail or the scheduled catch-up.
        wait_until(lambda: False, timeout_s=1.1)
        for address in MAILBOXES:
            client.publish(address)

        assert len(delivered) == 4 * 3 * 2
        assert wait_until(
            lambda: all(client.message_done(a, m) for m, a in delivered.items()),
            timeout_s=90,
            interval_s=0.25,
        ), f"not all synced; logs in {status.log_dir}"
        urgent = len(MAILBOXES) * 2
        # `hook` is named by both rules, but an action runs once per message.
        expected_hooks = len(delivered)
        assert wait_until(lambda: len(sink.deliveries) >= expected_hooks, timeout_s=30)
        wait_until(lambda: False, timeout_s=2)  # room for any extra (wrong) delivery

        counts = client.counts()
        assert counts.messages == Counter({"done": len(delivered)})
        # keep + hook per message, star + hook (same hook action: once) per urgent one.
        assert counts.actions == Counter({"done": 2 * len(delivered) + urgent})
        per_message = Counter(
            d["data"]["message"]["messageId"] for d in sink.deliveries
        )
        assert set(per_message) == set(delivered)
        assert sink.bad_signatures == 0
        # One forward per message action record: no repeats.
        assert (
            Counter(d["webhook_id"] for d in sink.deliveries).most_common(1)[0][1] == 1
        )
        assert len(sink.deliveries) == expected_hooks
        assert dict(counts.dead_letters) == {}
    finally:
        client.close()


def test_cli_without_a_stack_exits_1_with_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "INBOXSYNC_STACK_DIR": str(tmp_path)}

    result = subprocess.run(
        [sys.executable, "-m", "inboxsync.cli", "local", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert "no local stack is running" in result.stderr


def test_starting_twice_is_refused_and_leaves_the_first_running(
    stack: tuple[LocalStack, StackStatus],
) -> None:
    local, status = stack
    second = LocalStack(
        state_dir=local.state_dir, base_port=0, rules_file=Path(status.rules_file)
    )

    with pytest.raises(Exception, match="already running"):
        second.start()

    assert local.dead_processes() == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["local", "push", "--data", "{not json"], 2, "--data is not JSON"),
        (["sandbox", "deliver", "x@example.com", "--count", "0"], 2, "--count must be"),
        (["sandbox", "deliver", "nobody@example.com"], 1, "sandbox refused"),
    ],
)
def test_cli_bad_input_is_named_with_an_exit_code(
    stack: tuple[LocalStack, StackStatus], args: list[str], code: int, message: str
) -> None:
    _, status = stack

    result = cli(status, *args)

    assert result.returncode == code
    assert message in result.stderr


def test_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    base = holder.getsockname()[1]  # receive_push is the first of the ports
    try:
        local = LocalStack(state_dir=tmp_path, base_port=base)

        with pytest.raises(Exception, match=f"port {base} .* already in use"):
            local.start()

        assert local.dead_processes() == []
        assert not (tmp_path / "stack.json").exists()
    finally:
        holder.close()


def test_missing_java_is_named_and_nothing_is_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA", str(tmp_path / "no-such-java"))
    local = LocalStack(state_dir=tmp_path, base_port=0)

    with pytest.raises(Exception, match="java was not found"):
        local.start()

    assert local._processes == []


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def test_ctrl_c_during_start_up_leaves_nothing_running(tmp_path: Path) -> None:
    import signal

    env = {**os.environ, "INBOXSYNC_STACK_DIR": str(tmp_path)}
    run = subprocess.Popen(
        [sys.executable, "-m", "inboxsync.cli", "local", "run", "--base-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        # Interrupt once the first emulators are up but before the stack is.
        assert wait_until(lambda: len(_children(run.pid)) >= 2, timeout_s=60)
        started = _children(run.pid)

        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()

    assert "stopped" in output
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (tmp_path / "stack.json").exists()


def test_dead_letters_are_listed_and_replayed(
    stack: tuple[LocalStack, StackStatus],
) -> None:
    from inboxsync.sync.firestore_store import SyncFirestore
    from inboxsync.sync.registration import register_mailbox

    _, status = stack
    client = StackClient(status)
    late = "late@example.com"
    try:
        # An unusable push, and a notification for a mailbox nobody registered.
        assert (
            cli(status, "local", "push", "--data", '{"historyId": 5}').stdout.strip()
            == "204"
        )
        client.admin.create_mailbox(late)
        (early_mail,) = client.deliver(late, subject="sent before registration")
        data = json.dumps({"emailAddress": late, "historyId": 99})
        assert client.push(data, "late-1").status_code == 204
        assert wait_until(
            lambda: client.counts().dead_letters["unknown_mailbox"] == 1, timeout_s=30
        )

        listed = cli(status, "dead-letters", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        letters = {letter["kind"]: letter for letter in json.loads(listed.stdout)}
        assert {"push", "unknown_mailbox"} <= set(letters)
        assert "emailAddress" in letters["push"]["error"]

        still_bad = cli(status, "dead-letters", "replay", letters["push"]["id"])
        assert still_bad.returncode == 1
        assert "still refused" in still_bad.stderr

        # Registered without a checkpoint: the replayed task runs a full sync,
        # which finds the mail delivered before registration.
        register_mailbox(SyncFirestore(client.firestore), late, auth="none")
        replayed = cli(
            status, "dead-letters", "replay", letters["unknown_mailbox"]["id"]
        )
        assert replayed.returncode == 0, replayed.stderr
        assert wait_until(lambda: client.message_done(late, early_mail), timeout_s=30)

        after = json.loads(cli(status, "dead-letters", "list", "--json").stdout)
        assert {(x["kind"], x["replayed"]) for x in after} >= {
            ("unknown_mailbox", True)
        }
        missing = cli(status, "dead-letters", "replay", "no-such-id")
        assert missing.returncode == 1
        assert "no dead letter with id no-such-id" in missing.stderr
    finally:
        client.close()


def test_mailboxes_add_list_and_renew_catch_up_mail_without_notification(
    stack: tuple[LocalStack, StackStatus],
) -> None:
    import requests

    _, status = stack
    client = StackClient(status)
    quiet = "quiet@example.com"
    try:
        client.admin.create_mailbox(quiet)
        added = cli(status, "mailboxes", "add", quiet, "--auth", "none")
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["watch_expires_at"]
        listed = json.loads(cli(status, "mailboxes", "list").stdout)
        assert {"address": quiet, "status": "active"}.items() <= next(
            m for m in listed if m["address"] == quiet
        ).items()

        # The watch stops (as after 7 days without renewal): mail arrives, but
        # no notification does.
        stopped = requests.post(
            f"{status.gmail_api_url}gmail/v1/users/{quiet}/stop", timeout=10
        )
        assert stopped.status_code in (200, 204)
        (unnotified,) = client.deliver(quiet, subject="nobody told us")
        assert not wait_until(
            lambda: client.message_done(quiet, unnotified), timeout_s=2
        )

        renewed = cli(status, "mailboxes", "renew")

        assert renewed.returncode == 0, renewed.stderr
        assert json.loads(renewed.stdout)["renewed"] >= 1
        assert wait_until(lambda: client.message_done(quiet, unnotified), timeout_s=30)

        # The deployed path: the scheduled function does the same work.
        requests.post(f"{status.gmail_api_url}gmail/v1/users/{quiet}/stop", timeout=10)
        (second,) = client.deliver(quiet, subject="nobody told us either")
        scheduled = requests.post(status.renew_url, timeout=30)
        assert scheduled.status_code == 204, scheduled.text
        assert wait_until(lambda: client.message_done(quiet, second), timeout_s=30)
        assert client.admin.get_mailbox(quiet)["watch"]  # watching again
    finally:
        client.close()


def test_mailboxes_add_without_a_topic_is_refused(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "INBOXSYNC_STACK_DIR": str(tmp_path),
        "INBOXSYNC_PROJECT": "p",
        "INBOXSYNC_RULES_FILE": str(tmp_path / "rules.toml"),
        "INBOXSYNC_SYNC_AUDIENCE": "https://x.test/run_sync",
        "INBOXSYNC_SYNC_ALLOWED_EMAILS": "tasks@p.iam.gserviceaccount.com",
        "INBOXSYNC_GMAIL_TOPIC": "",
    }

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inboxsync.cli",
            "mailboxes",
            "add",
            "a@b.io",
            "--from-env",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert result.returncode == 2
    assert "--topic" in result.stderr


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("[[rules]\nname = ", "rules.toml"),
        (
            '[actions.a]\ntype = "teleport"\n[[rules]]\nname = "r"\nactions = ["a"]\n',
            "teleport",
        ),
        (
            '[actions.f]\ntype = "forward"\nurl = "http://127.0.0.1:9/"\n'
            'secret_env = "NOT_SET_ANYWHERE"\n[[rules]]\nname = "r"\nactions = ["f"]\n',
            "NOT_SET_ANYWHERE",
        ),
    ],
)
def test_bad_rules_file_is_refused_before_anything_starts(
    tmp_path: Path, rules: str, message: str
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(rules)
    local = LocalStack(state_dir=tmp_path / "state", base_port=0, rules_file=path)

    with pytest.raises(Exception, match=message):
        local.start()

    assert local._processes == []


def test_missing_emulator_package_is_named_and_nothing_is_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = tmp_path / "sdk"
    (sdk / "platform").mkdir(parents=True)  # a gcloud SDK without the emulators
    monkeypatch.setenv("CLOUDSDK_ROOT_DIR", str(sdk))
    local = LocalStack(state_dir=tmp_path / "state", base_port=0)

    with pytest.raises(
        Exception, match="install the package google-cloud-cli-firestore-emulator"
    ):
        local.start()

    assert local._processes == []
