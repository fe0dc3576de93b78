"""Cloud Function `receive_push`: the Pub/Sub push endpoint for Gmail notifications."""

from __future__ import annotations

import flask
import functions_framework

from inboxsync.errors import ConfigError
from inboxsync.http import (
    config_error_response,
    header_map,
    read_body,
    request_fields,
    status_response,
)
from inboxsync.logs import bind
from inboxsync.receiver import PushRequest
from inboxsync.wiring import Lazy, build_push_receiver

_receiver = Lazy(build_push_receiver)


@functions_framework.http
def receive_push(request: flask.Request) -> flask.Response:
    if request.method != "POST":
        return status_response(405, "only POST is accepted")
    try:
        receiver = _receiver.get()
    except ConfigError as exc:
        return config_error_response(exc)

    body, truncated = read_body(request, receiver.max_body_bytes)
    with bind(**request_fields(request, receiver.project)):
        outcome = receiver.handle(
            PushRequest(header_map(request), body, truncated, request.content_length)
        )
    return status_response(outcome.status, outcome.detail, outcome.retry_after_s)
