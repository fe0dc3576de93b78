"""Rules: which actions run for which new message, loaded from a TOML file.

A rule has a name, a `match` table (every given matcher must hold) and a list
of action names; actions are declared once under `[actions.NAME]` and may be
shared by several rules (an action runs at most once per message however many
rules name it). `shared/rules.example.toml` documents the
format. Every validation error names the file, the rule or action, and the field.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from inboxsync.errors import ConfigError
from inboxsync.sync.models import GmailMessage, MessageFormat

__all__ = ["Matcher", "Rule", "RuleSet", "load_rules", "parse_rules"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MATCH_FIELDS = {"labels", "exclude_labels", "from", "subject", "has_attachment"}


@dataclass(frozen=True)
class Matcher:
    """All conditions of one rule; an empty matcher matches every message."""

    labels: frozenset[str] = frozenset()
    exclude_labels: frozenset[str] = frozenset()
    from_patterns: tuple[str, ...] = ()
    subject: re.Pattern[str] | None = None
    has_attachment: bool | None = None

    def matches(self, message: GmailMessage) -> bool:
        if not self.labels <= message.label_ids:
            return False
        if self.exclude_labels & message.label_ids:
            return False
        if self.from_patterns and not _sender_matches(message, self.from_patterns):
            return False
        if self.subject is not None and not self.subject.search(
            message.header("subject")
        ):
            return False
        return (
            self.has_attachment is None or message.has_attachment == self.has_attachment
        )

    @property
    def message_format(self) -> MessageFormat:
        """The cheapest Gmail format that carries what these conditions read."""
        if self.has_attachment is not None:
            return MessageFormat.FULL
        if self.from_patterns or self.subject is not None:
            return MessageFormat.METADATA
        return MessageFormat.MINIMAL


def _sender_matches(message: GmailMessage, patterns: Sequence[str]) -> bool:
    addresses = [
        addr.lower() for _, addr in getaddresses([message.header("from")]) if addr
    ]
    return any(
        fnmatch.fnmatchcase(addr, pattern) for addr in addresses for pattern in patterns
    )


@dataclass(frozen=True)
class Rule:
    name: str
    matcher: Matcher
    actions: tuple[str, ...]


@dataclass(frozen=True)
class ActionSpec:
    """An action as declared in the file: its name, type and options."""

    name: str
    type: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    actions: Mapping[str, ActionSpec]
    source: str

    def actions_for(self, message: GmailMessage) -> list[tuple[Rule, str]]:
        """(first matching rule, action name) for each action to run, in file order."""
        chosen: dict[str, Rule] = {}
        for rule in self.rules:
            if rule.matcher.matches(message):
                for action in rule.actions:
                    chosen.setdefault(action, rule)
        return [(rule, action) for action, rule in chosen.items()]

    def label_triggers(self) -> frozenset[str]:
        """Labels whose later addition to a message may make a rule match it."""
        found: set[str] = set()
        for rule in self.rules:
            found |= rule.matcher.labels
        return frozenset(found)


def load_rules(path: str | Path) -> RuleSet:
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the rules file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_rules(data, source=source)


def parse_rules(
    data: Mapping[str, Any],
    *,
    source: str = "<rules>",
    known_action_type: Callable[[str], bool] | None = None,
) -> RuleSet:
    """Validate a parsed rules document (see the module docstring)."""
    unknown = set(data) - {"rules", "actions"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")

    actions = _parse_actions(data.get("actions", {}), source, known_action_type)
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ConfigError(f"{source}: `rules` must be an array of tables ([[rules]])")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, index, source, actions)
        if rule.name in seen:
            raise ConfigError(f"{source}: rule {rule.name!r}: the name is used twice")
        seen.add(rule.name)
        rules.append(rule)
    return RuleSet(tuple(rules), actions, source)


def _parse_actions(
    raw: Any, source: str, known_type: Callable[[str], bool] | None
) -> dict[str, ActionSpec]:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: `actions` must be a table of [actions.NAME] tables"
        )
    specs: dict[str, ActionSpec] = {}
    for name, options in raw.items():
        where = f"{source}: action {name!r}"
        if not _NAME.match(name):
            raise ConfigError(f"{where}: names use letters, digits, '_', '-', '.' only")
        if not isinstance(options, dict):
            raise ConfigError(f"{where}: must be a table")
        action_type = options.get("type")
        if not isinstance(action_type, str) or not action_type:
            raise ConfigError(
                f"{where}: field `type` is required (record, label, forward…)"
            )
        if known_type is not None and not known_type(action_type):
            raise ConfigError(
                f"{where}: field `type`: unknown action type {action_type!r}"
            )
        rest = {key: value for key, value in options.items() if key != "type"}
        specs[name] = ActionSpec(name, action_type, rest)
    return specs


def _parse_rule(
    raw: Any, index: int, source: str, actions: Mapping[str, ActionSpec]
) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: rule #{index + 1}: must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{source}: rule #{index + 1}: field `name` is required (letters, digits,"
            " '_', '-', '.')"
        )
    where = f"{source}: rule {name!r}"
    unknown = set(raw) - {"name", "match", "actions"}
    if unknown:
        raise ConfigError(f"{where}: unknown fields {sorted(unknown)}")

    action_names = raw.get("actions")
    if not isinstance(action_names, list) or not action_names:
        raise ConfigError(
            f"{where}: field `actions` must be a non-empty list of action names"
        )
    for action in action_names:
        if action not in actions:
            raise ConfigError(
                f"{where}: field `actions`: no [actions.{action}] is declared"
            )

    match = raw.get("match", {})
    if not isinstance(match, dict):
        raise ConfigError(f"{where}: field `match` must be a table")
    unknown = set(match) - _MATCH_FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown match fields {sorted(unknown)}")
    return Rule(name, _parse_matcher(match, where), tuple(dict.fromkeys(action_names)))


def _parse_matcher(match: Mapping[str, Any], where: str) -> Matcher:
    subject = match.get("subject")
    pattern: re.Pattern[str] | None = None
    if subject is not None:
        if not isinstance(subject, str):
            raise ConfigError(
                f"{where}: field `match.subject` must be a regular expression"
            )
        try:
            pattern = re.compile(subject, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(
                f"{where}: field `match.subject`: bad pattern: {exc}"
            ) from None
    has_attachment = match.get("has_attachment")
    if has_attachment is not None and not isinstance(has_attachment, bool):
        raise ConfigError(
            f"{where}: field `match.has_attachment` must be true or false"
        )
    return Matcher(
        labels=frozenset(_strings(match, "labels", where)),
        exclude_labels=frozenset(_strings(match, "exclude_labels", where)),
        from_patterns=tuple(p.lower() for p in _strings(match, "from", where)),
        subject=pattern,
        has_attachment=has_attachment,
    )


def _strings(match: Mapping[str, Any], field: str, where: str) -> list[str]:
    value = match.get(field, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(
            f"{where}: field `match.{field}` must be a string or list of strings"
        )
    return list(value)
