from __future__ import annotations

import json
import logging

from inboxsync.logs import JsonFormatter, bind, trace_from_headers


def _render(record_fields: dict[str, object]) -> dict[str, object]:
    record = logging.LogRecord(
        "inboxsync.test", logging.WARNING, "f.py", 1, "push %s", ("dup",), None
    )
    for key, value in record_fields.items():
        setattr(record, key, value)
    return json.loads(JsonFormatter().format(record))  # type: ignore[no-any-return]


def test_line_has_severity_message_and_bound_fields() -> None:
    with bind(event_id="e1", mailbox_id="m1"):
        entry = _render({"outcome": "duplicate"})

    assert entry["severity"] == "WARNING"
    assert entry["message"] == "push dup"
    assert (entry["event_id"], entry["mailbox_id"], entry["outcome"]) == (
        "e1",
        "m1",
        "duplicate",
    )


def test_bound_fields_end_with_the_block() -> None:
    with bind(event_id="inner"):
        pass

    assert "event_id" not in _render({})


def test_trace_from_cloud_header_and_traceparent() -> None:
    legacy = trace_from_headers({"x-cloud-trace-context": "abc123/42;o=1"}, "proj")
    w3c = trace_from_headers(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        "proj",
    )

    assert legacy == {
        "logging.googleapis.com/trace": "projects/proj/traces/abc123",
        "logging.googleapis.com/spanId": "42",
    }
    assert w3c["logging.googleapis.com/trace"].endswith(
        "/0af7651916cd43dd8448eb211c80319c"
    )
    assert trace_from_headers({"traceparent": "garbage"}, "proj") == {}
