"""One JSON object per log line, in the shape Cloud Logging reads.

Fields bound with `bind()` (trace, event id, mailbox hash...) are carried by a
context variable, so every line written while handling one request carries
them without passing a logger around.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

__all__ = [
    "JsonFormatter",
    "bind",
    "configure_logging",
    "get_logger",
    "trace_from_headers",
]

_FIELDS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "inboxsync_log_fields", default=MappingProxyType({})
)
_TRACE_KEY = "logging.googleapis.com/trace"
_SPAN_KEY = "logging.googleapis.com/spanId"
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """Render a record as a single JSON line with severity, message and fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": _rfc3339(record.created),
        }
        entry.update(_FIELDS.get())
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def _rfc3339(epoch_s: float) -> str:
    millis = int((epoch_s % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{millis:03d}Z"


def configure_logging(level: str = "INFO") -> None:
    """Send the root logger to stdout as JSON lines (entry points only)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.handlers = [handler]
    root.setLevel(level)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add fields to every log line written inside the block."""
    token = _FIELDS.set({**_FIELDS.get(), **fields})
    try:
        yield
    finally:
        _FIELDS.reset(token)


def trace_from_headers(headers: Mapping[str, str], project: str) -> dict[str, str]:
    """Trace fields from X-Cloud-Trace-Context or W3C traceparent (lower-case keys)."""
    trace_id = span_id = ""
    legacy = headers.get("x-cloud-trace-context", "")
    if legacy:
        trace_part, _, rest = legacy.partition("/")
        trace_id = trace_part.strip()
        span_id = rest.split(";", 1)[0].strip()
    else:
        parts = headers.get("traceparent", "").split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            trace_id, span_id = parts[1], parts[2]
    if not trace_id or not trace_id.isalnum():
        return {}
    fields = {_TRACE_KEY: f"projects/{project}/traces/{trace_id}"}
    if span_id:
        fields[_SPAN_KEY] = span_id
    return fields
