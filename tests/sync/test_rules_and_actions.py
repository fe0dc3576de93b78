"""Rules file validation, each matcher, and each built-in action."""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from inboxsync.errors import ConfigError, PermanentError, TransientError
from inboxsync.sync import actions as actions_module
from inboxsync.sync.actions import ActionCall, BuildContext, build_actions
from inboxsync.sync.models import GmailMessage, MessageFormat
from inboxsync.sync.rules import load_rules, parse_rules

from .fakes import FakeGmail

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def message(**overrides: Any) -> GmailMessage:
    fields: dict[str, Any] = {
        "message_id": "m1",
        "thread_id": "t1",
        "label_ids": frozenset({"INBOX", "UNREAD"}),
        "headers": {
            "from": "Billing <Invoices@Billing.Example.com>",
            "subject": "Invoice 42",
        },
        "has_attachment": True,
    }
    fields.update(overrides)
    return GmailMessage(**fields)


def rules_with(match: str) -> Any:
    return parse_rules(
        tomllib.loads(
            f"""
[actions.keep]
type = "record"
[[rules]]
name = "r"
actions = ["keep"]
[rules.match]
{match}
"""
        )
    )


@pytest.mark.parametrize(
    ("match", "matching", "not_matching"),
    [
        ('labels = ["INBOX"]', {}, {"label_ids": frozenset({"SENT"})}),
        ('exclude_labels = ["SPAM"]', {}, {"label_ids": frozenset({"SPAM"})}),
        (
            'from = "*@billing.example.com"',
            {},
            {"headers": {"from": "x@other.example"}},
        ),
        ('subject = "invoice\\\\s+\\\\d+"', {}, {"headers": {"subject": "Hello"}}),
        ("has_attachment = true", {}, {"has_attachment": False}),
    ],
)
def test_each_matcher(
    match: str, matching: dict[str, Any], not_matching: dict[str, Any]
) -> None:
    rules = rules_with(match)

    assert [a for _, a in rules.actions_for(message(**matching))] == ["keep"]
    assert rules.actions_for(message(**not_matching)) == []


def test_matcher_formats_ask_for_the_least_gmail_data() -> None:
    assert (
        rules_with('labels = ["INBOX"]').rules[0].matcher.message_format
        is MessageFormat.MINIMAL
    )
    assert (
        rules_with('subject = "x"').rules[0].matcher.message_format
        is MessageFormat.METADATA
    )
    assert (
        rules_with("has_attachment = false").rules[0].matcher.message_format
        is MessageFormat.FULL
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[rules]]\nname = "a"\nactions = ["missing"]', "rule 'a': field `actions`"),
        (
            '[actions.x]\ntype = "record"\n[[rules]]\nactions = ["x"]',
            "rule #1: field `name`",
        ),
        (
            '[actions.x]\ntype = "record"\n[[rules]]\nname = "a"\nactions = ["x"]\n'
            '[rules.match]\nsubject = "("',
            "rule 'a': field `match.subject`",
        ),
        (
            '[actions.x]\ntype = "record"\n[[rules]]\nname = "a"\nactions = ["x"]\n'
            "[rules.match]\ncolour = 1",
            "rule 'a': unknown match fields ['colour']",
        ),
        ("[actions.x]\nurl = 1", "action 'x': field `type`"),
    ],
)
def test_invalid_rules_name_file_rule_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)

    with pytest.raises(ConfigError) as raised:
        load_rules(path)

    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_example_rules_file_loads_and_builds(tmp_path: Path) -> None:
    rules = load_rules(REPO / "shared" / "rules.example.toml")
    context = BuildContext({"INBOXSYNC_FORWARD_SECRET": SECRET}, requests.Session())

    built = build_actions(rules, context)

    assert set(built) == set(rules.actions)
    assert rules.rules


def call_for(action_record: str, gmail: FakeGmail | None = None) -> ActionCall:
    return ActionCall(
        record_id=action_record,
        mailbox_id="hash",
        mailbox_address="owner@example.com",
        rule_name="r",
        message=message(),
        gmail=gmail or FakeGmail(),
    )


def build_one(text: str, environ: dict[str, str] | None = None) -> Any:
    rules = parse_rules(tomllib.loads(text))
    context = BuildContext(environ or {}, requests.Session())
    return next(iter(build_actions(rules, context).values()))


def test_record_action_returns_metadata_without_body() -> None:
    action = build_one('[actions.keep]\ntype = "record"')

    result = action.perform(call_for("rec-1"))

    assert result["message"]["subject"] == "Invoice 42"
    assert result["message"]["hasAttachment"] is True
    assert "body" not in result["message"]


def test_label_action_adds_labels_and_is_repeatable() -> None:
    gmail = FakeGmail()
    message_id, _ = gmail.deliver()
    action = build_one('[actions.tag]\ntype = "label"\nlabel_ids = ["Label_7"]')
    call = ActionCall("rec", "hash", "a@b", "r", gmail.messages[message_id], gmail)

    action.perform(call)
    action.perform(call)

    assert "Label_7" in gmail.messages[message_id].label_ids


def test_label_action_needs_label_ids() -> None:
    with pytest.raises(ConfigError, match="label_ids"):
        build_one('[actions.tag]\ntype = "label"')


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that verifies the signature and dedups on webhook-id."""

    seen: dict[str, int] = {}
    answers: list[int] = []

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["content-length"]))
        status = self.answers.pop(0) if self.answers else 204
        try:
            Webhook(SECRET).verify(
                data, {k.lower(): v for k, v in self.headers.items()}
            )
        except Exception:
            status = 401
        if status == 204:
            webhook_id = self.headers["webhook-id"]
            self.seen[webhook_id] = self.seen.get(webhook_id, 0) + 1
            json.loads(data)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def webhook_url() -> Iterator[str]:
    _Receiver.seen = {}
    _Receiver.answers = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def forward_action(url: str, secret: str = SECRET) -> Any:
    text = f'[actions.out]\ntype = "forward"\nurl = "{url}"\nsecret_env = "HOOK_SECRET"'
    return build_one(text, {"HOOK_SECRET": secret})


def test_forward_posts_a_signed_event_with_the_record_id(webhook_url: str) -> None:
    action = forward_action(webhook_url)

    result = action.perform(call_for("action-record-1"))

    assert result == {"status": 204}
    assert _Receiver.seen == {"action-record-1": 1}


def test_forward_with_a_wrong_secret_is_refused_permanently(webhook_url: str) -> None:
    action = forward_action(webhook_url, secret="whsec_" + "c2VjcmV0LWJ1dC13cm9uZw==")

    with pytest.raises(PermanentError):
        action.perform(call_for("rec"))


def test_forward_target_errors_are_transient_for_5xx(webhook_url: str) -> None:
    _Receiver.answers = [503]
    action = forward_action(webhook_url)

    with pytest.raises(TransientError):
        action.perform(call_for("rec"))
    action.perform(call_for("rec"))

    assert _Receiver.seen == {"rec": 1}


def test_forward_refuses_plain_http_to_remote_hosts() -> None:
    with pytest.raises(ConfigError, match="https"):
        forward_action("http://hooks.example.com/x")


def test_custom_action_types_come_from_the_entry_point_group(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    plugin = EntryPoint(
        name="archive",
        value="inboxsync.sync.actions:RecordAction",
        group="inboxsync.actions",
    )
    monkeypatch.setattr(actions_module, "entry_points", lambda group: [plugin])

    action = build_one('[actions.a]\ntype = "archive"')

    assert actions_module.is_known_action_type("archive")
    assert action.perform(call_for("rec"))["rule"] == "r"


def test_unknown_action_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown type 'nope'"):
        build_one('[actions.a]\ntype = "nope"')
