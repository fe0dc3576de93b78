"""Glue between a Flask request (functions-framework) and the product logic."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flask

from inboxsync.errors import ConfigError
from inboxsync.handling import Handler, IncomingRequest
from inboxsync.logs import bind, configure_logging, get_logger, trace_from_headers

__all__ = [
    "config_error_response",
    "header_map",
    "read_body",
    "request_fields",
    "serve",
    "status_response",
]

_log = get_logger("inboxsync.http")


def read_body(request: flask.Request, limit: int) -> tuple[bytes, bool]:
    """Read at most limit bytes of the body; the flag says it was longer."""
    data = request.stream.read(limit + 1)
    return data[:limit], len(data) > limit


def header_map(request: flask.Request) -> dict[str, str]:
    """The request headers as a plain dict with lower-case names."""
    return {name.lower(): value for name, value in request.headers.items()}


def request_fields(request: flask.Request, project: str) -> dict[str, Any]:
    fields: dict[str, Any] = dict(trace_from_headers(header_map(request), project))
    if execution_id := request.headers.get("Function-Execution-Id"):
        fields["execution_id"] = execution_id
    return fields


def status_response(
    status: int, detail: str = "", retry_after_s: float | None = None
) -> flask.Response:
    response = flask.Response(
        "" if status == 204 else detail + "\n", status=status, mimetype="text/plain"
    )
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return response


def config_error_response(exc: ConfigError) -> flask.Response:
    """A misconfigured instance answers 500 with the reason, and logs it."""
    configure_logging()
    with bind(outcome="config_error"):
        _log.error("configuration error: %s", exc)
    return status_response(500, f"configuration error: {exc}")


def serve(request: flask.Request, handler: Callable[[], Handler]) -> flask.Response:
    """Everything an entry point does: decode, call the handler, map the status."""
    if request.method != "POST":
        return status_response(405, "only POST is accepted")
    try:
        target = handler()  # built once per instance, on first use
    except ConfigError as exc:
        return config_error_response(exc)

    body, truncated = read_body(request, target.max_body_bytes)
    incoming = IncomingRequest(
        header_map(request), body, truncated, request.content_length
    )
    with bind(**request_fields(request, target.project)):
        outcome = target.handle(incoming)
    return status_response(outcome.status, outcome.detail, outcome.retry_after_s)
