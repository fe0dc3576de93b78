"""The subset of Gmail's search language that `messages.list` understands here.

Supported terms (space separated, all must match):
`after:` / `before:` with epoch seconds or a date `YYYY/MM/DD` (UTC midnight),
`newer_than:` / `older_than:` with `Nd` or `Nh`, `label:` / `in:` with a label
name or id, `is:unread|starred|important`, `from:`, `to:`, `subject:`,
`has:attachment`, and bare words (case-insensitive text search). Any other
`operator:` is rejected, so a product query the sandbox cannot honour fails
loudly instead of matching the wrong messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .mime import MessageSummary

__all__ = ["MessageView", "QueryError", "compile_query"]

_DURATION = re.compile(r"^(\d+)([dh])$")
_DATE = re.compile(r"^(\d{4})[/-](\d{1,2})[/-](\d{1,2})$")
_UNIT_S = {"d": 86_400, "h": 3_600}
_IS_LABELS = {"unread": "UNREAD", "starred": "STARRED", "important": "IMPORTANT"}


class QueryError(ValueError):
    """The query uses syntax the sandbox does not support."""


@dataclass(frozen=True)
class MessageView:
    """What a query term may look at."""

    label_ids: frozenset[str]
    internal_date_ms: int
    summary: MessageSummary


Predicate = Callable[[MessageView], bool]


def _instant_s(value: str) -> float:
    if value.isdigit():
        return float(value)
    match = _DATE.match(value)
    if not match:
        raise QueryError(f"expected epoch seconds or YYYY/MM/DD, got {value!r}")
    year, month, day = (int(group) for group in match.groups())
    try:
        return datetime(year, month, day, tzinfo=UTC).timestamp()
    except ValueError as exc:
        raise QueryError(f"invalid date {value!r}: {exc}") from exc


def _duration_s(value: str) -> int:
    match = _DURATION.match(value)
    if not match:
        raise QueryError(f"expected a duration like 2d or 12h, got {value!r}")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def compile_query(
    query: str,
    *,
    now_ms: int,
    resolve_label: Callable[[str], str | None],
) -> tuple[list[Predicate], set[str]]:
    """Turn a query into predicates, plus the label ids it names explicitly.

    `resolve_label` maps a label name or id to its id (None when unknown); the
    named ids let the caller decide whether SPAM and TRASH were asked for.
    """
    predicates: list[Predicate] = []
    named_labels: set[str] = set()

    for term in query.split():
        operator, sep, value = term.partition(":")
        if not sep:
            predicates.append(_text_contains(term.lower()))
            continue

        operator = operator.lower()
        if not value:
            raise QueryError(f"empty value for {operator}:")

        if operator == "after":
            predicates.append(_date_from(_instant_s(value) * 1000))
        elif operator == "before":
            predicates.append(_date_until(_instant_s(value) * 1000))
        elif operator == "newer_than":
            predicates.append(_date_from(now_ms - _duration_s(value) * 1000))
        elif operator == "older_than":
            predicates.append(_date_until(now_ms - _duration_s(value) * 1000))
        elif operator in ("label", "in"):
            label_id = resolve_label(value)
            if label_id is not None:
                named_labels.add(label_id)
            # Gmail answers an unknown label with an empty result, not an error.
            predicates.append(_has_label(label_id))
        elif operator == "is":
            if value.lower() not in _IS_LABELS:
                raise QueryError(f"unsupported is:{value}")
            predicates.append(_has_label(_IS_LABELS[value.lower()]))
        elif operator in ("from", "to", "subject"):
            predicates.append(_header_contains(operator, value.lower()))
        elif operator == "has":
            if value.lower() != "attachment":
                raise QueryError(f"unsupported has:{value}")
            predicates.append(_has_attachment)
        else:
            raise QueryError(f"unsupported search operator {operator}:")

    return predicates, named_labels


def _date_from(instant_ms: float) -> Predicate:
    return lambda view: view.internal_date_ms >= instant_ms


def _date_until(instant_ms: float) -> Predicate:
    return lambda view: view.internal_date_ms < instant_ms


def _has_label(label_id: str | None) -> Predicate:
    return lambda view: label_id is not None and label_id in view.label_ids


def _has_attachment(view: MessageView) -> bool:
    return view.summary.has_attachment


def _header_contains(header: str, needle: str) -> Predicate:
    def check(view: MessageView) -> bool:
        summary = view.summary
        field = {"from": summary.sender, "to": summary.to, "subject": summary.subject}
        return needle in field[header].lower()

    return check


def _text_contains(word: str) -> Predicate:
    def check(view: MessageView) -> bool:
        summary = view.summary
        haystack = f"{summary.sender}\n{summary.to}\n{summary.subject}\n{summary.text}"
        return word in haystack.lower()

    return check
