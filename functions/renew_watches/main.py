"""Cloud Function `renew_watches`: Cloud Scheduler's daily Gmail watch renewal."""

from __future__ import annotations

import flask
import functions_framework

from inboxsync.http import serve
from inboxsync.renewal import build_watch_renewer
from inboxsync.wiring import Lazy

_renewer = Lazy(build_watch_renewer)


@functions_framework.http
def renew_watches(request: flask.Request) -> flask.Response:
    return serve(request, _renewer.get)
