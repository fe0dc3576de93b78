"""Cloud Function `run_sync`: the Cloud Tasks target that syncs one mailbox."""

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
from inboxsync.sync.build import build_sync_worker
from inboxsync.sync.worker import SyncRequest
from inboxsync.wiring import Lazy

_worker = Lazy(build_sync_worker)


@functions_framework.http
def run_sync(request: flask.Request) -> flask.Response:
    if request.method != "POST":
        return status_response(405, "only POST is accepted")
    try:
        worker = _worker.get()
    except ConfigError as exc:
        return config_error_response(exc)

    body, truncated = read_body(request, worker.max_body_bytes)
    with bind(**request_fields(request, worker.project)):
        outcome = worker.handle(SyncRequest(header_map(request), body, truncated))
    return status_response(outcome.status, outcome.detail, outcome.retry_after_s)
