"""The sandbox's HTTP server: stdlib `ThreadingHTTPServer` on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import cast

from .app import Response, SandboxApp
from .persistence import StateFile
from .publisher import Publisher, RecordingPublisher
from .state import SandboxError, SandboxState

__all__ = ["SandboxServer"]

_LOG = logging.getLogger(__name__)
_HOST = "127.0.0.1"
_IDLE_CONNECTION_TIMEOUT_S = 30.0
_MAX_BODY_BYTES = 64 * 1024 * 1024
# How quickly stop() is noticed; the default half second adds up in test suites.
_POLL_INTERVAL_S = 0.02


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive connections park a thread on a read; closing must not wait on them.
    block_on_close = False
    app: SandboxApp


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_CONNECTION_TIMEOUT_S
    server_version = "inboxsync-gmail-sandbox"
    # Send headers and body in one segment: split writes meet delayed ACKs and
    # cost about 40 ms per request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        started = time.monotonic()
        app = cast(_HttpServer, self.server).app
        headers = {name.lower(): value for name, value in self.headers.items()}

        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, b"", None)
            return
        body = self.rfile.read(length) if length else b""

        try:
            response = app.handle(self.command, self.path, headers, body)
        except Exception:
            _LOG.exception("sandbox request crashed")
            response = Response.error(SandboxError(500, "sandbox internal error"))

        self._send(response.status, response.body, response.content_type)
        _LOG.info(
            "sandbox request",
            extra={
                "http_method": self.command,
                "status": response.status,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )

    def _send(self, status: int, body: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    do_GET = _serve
    do_POST = _serve
    do_DELETE = _serve
    do_PUT = _serve
    do_PATCH = _serve

    def log_message(self, format: str, *args: object) -> None:
        # The request line carries addresses; `_serve` logs a scrubbed line.
        return


class SandboxServer:
    """The Gmail sandbox listening on 127.0.0.1.

    `port=0` picks a free port; read the real one from `port` or `url`. Pass
    `state_file` to load the state at start and save it after every change.
    Without a `publisher`, notifications go to an in-memory `RecordingPublisher`
    (and are listed by the admin API either way).
    """

    def __init__(
        self,
        state: SandboxState | None = None,
        *,
        port: int = 0,
        publisher: Publisher | None = None,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.state = state or SandboxState()
        self.publisher: Publisher = publisher or RecordingPublisher()
        store = None
        if state_file is not None:
            store = StateFile(state_file)
            store.load_into(self.state)
        self.app = SandboxApp(self.state, self.publisher, state_file=store)

        self._http = _HttpServer((_HOST, port), _Handler)
        self._http.app = self.app
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        """Root URL: pass it as `client_options={"api_endpoint": url}`."""
        return f"http://{_HOST}:{self.port}/"

    @property
    def batch_url(self) -> str:
        """Batch endpoint; give it to `BatchHttpRequest(batch_uri=...)`."""
        return f"{self.url}batch/gmail/v1"

    def start(self) -> SandboxServer:
        """Serve in a background thread; returns self for chaining."""
        if self._thread is None:
            self._serving.set()
            self._thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL_S},
                name=f"gmail-sandbox-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` is called from elsewhere."""
        self._serving.set()
        self._http.serve_forever(poll_interval=_POLL_INTERVAL_S)

    def stop(self) -> None:
        """Stop serving and close the socket; the state stays readable."""
        # shutdown() waits for serve_forever() to notice, so only call it if serving.
        if self._serving.is_set():
            self._http.shutdown()
            self._serving.clear()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
