"""Cloud Function `receive_push`: the Pub/Sub push endpoint for Gmail notifications."""

from __future__ import annotations

import flask
import functions_framework

from inboxsync.http import serve
from inboxsync.wiring import Lazy, build_push_receiver

_receiver = Lazy(build_push_receiver)


@functions_framework.http
def receive_push(request: flask.Request) -> flask.Response:
    return serve(request, _receiver.get)
