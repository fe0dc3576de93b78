"""Actions run for matching messages, each at most once per (mailbox, message, action).

Built-in types:
- `record`: keep the message's metadata (no body) as the action record's result.
- `label`: add Gmail labels to the message.
- `forward`: POST a JSON event to an HTTP endpoint, signed per the Standard
  Webhooks spec; `webhook-id` is the action record id, so a re-run after a crash
  sends the same id and the receiver can drop the repeat.

Teams add their own types through the `inboxsync.actions` entry-point group: the
entry point's name is the type, its object a factory called as
`factory(spec, context)` returning an object with `name`, `message_format` and
`perform(call) -> Mapping`. Raise TransientError to be retried later and
PermanentError to give the action up; both keep the exactly-once bookkeeping.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from standardwebhooks.webhooks import Webhook

from inboxsync.errors import ConfigError, PermanentError, TransientError
from inboxsync.sync.models import GmailMessage, MessageFormat
from inboxsync.sync.ports import MailboxGmail
from inboxsync.sync.rules import ActionSpec, RuleSet

__all__ = [
    "ENTRY_POINT_GROUP",
    "Action",
    "ActionCall",
    "BuildContext",
    "ForwardAction",
    "LabelAction",
    "RecordAction",
    "build_actions",
    "default_context",
    "is_known_action_type",
]

ENTRY_POINT_GROUP = "inboxsync.actions"
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class ActionCall:
    """Everything an action may use while performing itself."""

    record_id: str  # the idempotency key
    mailbox_id: str
    mailbox_address: str
    rule_name: str
    message: GmailMessage
    gmail: MailboxGmail


class Action(Protocol):
    name: str
    message_format: MessageFormat

    def perform(self, call: ActionCall) -> Mapping[str, Any]:
        """Do it; safe to repeat with the same record id. Returns the stored result."""
        ...


@dataclass(frozen=True)
class BuildContext:
    """What factories may need: the environment (for secrets) and an HTTP session."""

    environ: Mapping[str, str]
    session: requests.Session


ActionFactory = Callable[[ActionSpec, BuildContext], Action]


class RecordAction:
    """Store the message metadata in the action record."""

    message_format = MessageFormat.METADATA

    def __init__(self, spec: ActionSpec, context: BuildContext) -> None:
        _no_options(spec, set())
        self.name = spec.name

    def perform(self, call: ActionCall) -> Mapping[str, Any]:
        return {"message": call.message.metadata(), "rule": call.rule_name}


class LabelAction:
    """Add Gmail labels (by id, e.g. `Label_12` or `STARRED`) to the message."""

    message_format = MessageFormat.MINIMAL

    def __init__(self, spec: ActionSpec, context: BuildContext) -> None:
        _no_options(spec, {"label_ids"})
        labels = spec.options.get("label_ids")
        if isinstance(labels, str):
            labels = [labels]
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(label, str) and label for label in labels)
        ):
            raise ConfigError(
                f"action {spec.name!r}: field `label_ids` must be a non-empty list of"
                " Gmail label ids"
            )
        self.name = spec.name
        self.label_ids = tuple(labels)

    def perform(self, call: ActionCall) -> Mapping[str, Any]:
        # Adding a label the message already has changes nothing: a re-run is safe.
        call.gmail.add_labels(call.message.message_id, self.label_ids)
        return {"labelIds": list(self.label_ids)}


class ForwardAction:
    """POST a Standard Webhooks signed JSON event about the message."""

    message_format = MessageFormat.METADATA

    def __init__(self, spec: ActionSpec, context: BuildContext) -> None:
        _no_options(spec, {"url", "secret_env", "timeout_s"})
        where = f"action {spec.name!r}"
        url = spec.options.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in {"https", "http"} or not parts.hostname:
            raise ConfigError(f"{where}: field `url` must be an https URL")
        if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
            raise ConfigError(
                f"{where}: field `url` must use https (http only on loopback)"
            )
        secret_env = spec.options.get("secret_env")
        if not isinstance(secret_env, str) or not secret_env:
            raise ConfigError(
                f"{where}: field `secret_env` names the environment variable holding"
                " the signing secret (whsec_…)"
            )
        secret = context.environ.get(secret_env, "").strip()
        if not secret:
            raise ConfigError(f"{where}: environment variable {secret_env} is not set")
        try:
            self._signer = Webhook(secret)
        except Exception as exc:  # the library raises plain errors on bad base64
            raise ConfigError(
                f"{where}: {secret_env} is not a valid secret: {exc}"
            ) from None
        timeout_s = spec.options.get("timeout_s", 10)
        if not isinstance(timeout_s, int | float) or not 0 < timeout_s <= 60:
            raise ConfigError(f"{where}: field `timeout_s` must be a number in (0, 60]")
        self.name = spec.name
        self.url = str(url)
        self._timeout_s = float(timeout_s)
        self._session = context.session

    def perform(self, call: ActionCall) -> Mapping[str, Any]:
        sent_at = datetime.now(UTC)
        body = json.dumps(
            {
                "type": "inboxsync.message.matched",
                "timestamp": sent_at.isoformat(),
                "data": {
                    "mailboxId": call.mailbox_id,
                    "mailbox": call.mailbox_address,
                    "rule": call.rule_name,
                    "action": self.name,
                    "message": call.message.metadata(),
                },
            },
            separators=(",", ":"),
        )
        headers = {
            "content-type": "application/json",
            "webhook-id": call.record_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self._signer.sign(call.record_id, sent_at, body),
        }
        try:
            response = self._session.post(
                self.url,
                data=body.encode("utf-8"),
                headers=headers,
                timeout=self._timeout_s,
            )
        except requests.RequestException as exc:
            raise TransientError(
                f"forward to {self.name} failed: {type(exc).__name__}"
            ) from exc
        status = response.status_code
        if status in (408, 425, 429) or status >= 500:
            raise TransientError(f"forward target of {self.name} answered {status}")
        if status >= 300:
            raise PermanentError(
                f"forward target of {self.name} refused the event: {status}"
            )
        return {"status": status}


_BUILT_INS: dict[str, ActionFactory] = {
    "record": RecordAction,
    "label": LabelAction,
    "forward": ForwardAction,
}


def _plugin_factories() -> dict[str, ActionFactory]:
    found: dict[str, ActionFactory] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry.load()
    return found


def is_known_action_type(action_type: str) -> bool:
    if action_type in _BUILT_INS:
        return True
    return any(e.name == action_type for e in entry_points(group=ENTRY_POINT_GROUP))


def build_actions(
    rules: RuleSet,
    context: BuildContext,
    extra_factories: Mapping[str, ActionFactory] | None = None,
) -> dict[str, Action]:
    """Instantiate every declared action; errors name the rules file and the action."""
    factories: dict[str, ActionFactory] = {**_BUILT_INS, **(extra_factories or {})}
    plugins: dict[str, ActionFactory] | None = None
    built: dict[str, Action] = {}
    for name, spec in rules.actions.items():
        factory = factories.get(spec.type)
        if factory is None:
            plugins = plugins if plugins is not None else _plugin_factories()
            factory = plugins.get(spec.type)
        if factory is None:
            raise ConfigError(
                f"{rules.source}: action {name!r}: field `type`: unknown type"
                f" {spec.type!r} (built-ins: record, label, forward; plugins come from"
                f" the {ENTRY_POINT_GROUP!r} entry-point group)"
            )
        try:
            built[name] = factory(spec, context)
        except ConfigError as exc:
            raise ConfigError(f"{rules.source}: {exc}") from None
    return built


def _no_options(spec: ActionSpec, allowed: set[str]) -> None:
    unknown = set(spec.options) - allowed
    if unknown:
        raise ConfigError(f"action {spec.name!r}: unknown fields {sorted(unknown)}")


def default_context() -> BuildContext:
    return BuildContext(environ=dict(os.environ), session=requests.Session())
