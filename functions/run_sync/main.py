"""Cloud Function `run_sync`: the Cloud Tasks target that syncs one mailbox."""

from __future__ import annotations

import flask
import functions_framework

from inboxsync.http import serve
from inboxsync.sync.build import build_sync_worker
from inboxsync.wiring import Lazy

_worker = Lazy(build_sync_worker)


@functions_framework.http
def run_sync(request: flask.Request) -> flask.Response:
    return serve(request, _worker.get)
