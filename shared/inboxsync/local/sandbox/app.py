"""Request routing for the sandbox, independent of the HTTP server.

`SandboxApp.handle` takes a method, a target (path and query), headers and a
body, and returns a `Response`. The Gmail routes mirror the paths of the
discovery document (`gmail/v1/users/{userId}/...`); the admin routes live
under `/sandbox/v1/`; the batch endpoint replays each embedded request
through the same Gmail routes.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .batch import BatchFormatError, PartResponse, format_batch, parse_batch
from .persistence import StateFile
from .publisher import Publisher
from .state import SandboxError, SandboxState

__all__ = ["BATCH_PATHS", "MAX_BATCH_PARTS", "Response", "SandboxApp"]

_LOG = logging.getLogger(__name__)

MAX_BATCH_PARTS = 100
BATCH_PATHS = ("/batch/gmail/v1", "/batch")
_JSON = "application/json; charset=UTF-8"
_USER_HEADER = "x-sandbox-user"
_TOKEN_PREFIX = "sandbox:"
_NOTIFICATION_LOG_SIZE = 1000

Query = dict[str, list[str]]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = _JSON

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(payload).encode("utf-8"))

    @classmethod
    def error(cls, error: SandboxError) -> Response:
        return cls.json(error.body(), error.status)


@dataclass(frozen=True)
class _Call:
    """One parsed request, as the route handlers see it."""

    match: re.Match[str]
    query: Query
    headers: dict[str, str]
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def params(self, name: str) -> list[str]:
        # Repeated parameters arrive as `a=x&a=y`; also accept `a=x,y`.
        return [v for value in self.query.get(name, []) for v in value.split(",") if v]

    def path(self, name: str) -> str:
        return unquote(self.match.group(name))

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            payload = json.loads(self.body)
        except ValueError as exc:
            raise SandboxError(400, f"Invalid JSON payload received: {exc}") from exc
        if not isinstance(payload, dict):
            raise SandboxError(400, "Invalid JSON payload: expected an object")
        return payload


_GmailHandler = Callable[[SandboxState, str, _Call], Response]
_AdminHandler = Callable[["SandboxApp", _Call], Response]

_USER = r"/gmail/v1/users/(?P<user>[^/]+)"


def _route(pattern: str) -> re.Pattern[str]:
    return re.compile(f"^{pattern}$")


def _profile(state: SandboxState, user: str, call: _Call) -> Response:
    return Response.json(state.get_profile(user))


def _watch(state: SandboxState, user: str, call: _Call) -> Response:
    return Response.json(state.watch(user, call.json()))


def _stop(state: SandboxState, user: str, call: _Call) -> Response:
    state.stop(user)
    return Response(204, content_type=None)


def _labels(state: SandboxState, user: str, call: _Call) -> Response:
    return Response.json(state.list_labels(user))


def _history(state: SandboxState, user: str, call: _Call) -> Response:
    return Response.json(
        state.list_history(
            user,
            start_history_id=call.param("startHistoryId"),
            history_types=call.params("historyTypes"),
            label_id=call.param("labelId"),
            max_results=call.param("maxResults"),
            page_token=call.param("pageToken"),
        )
    )


def _messages(state: SandboxState, user: str, call: _Call) -> Response:
    include = (call.param("includeSpamTrash") or "false").lower() == "true"
    return Response.json(
        state.list_messages(
            user,
            q=call.param("q"),
            label_ids=call.params("labelIds"),
            max_results=call.param("maxResults"),
            page_token=call.param("pageToken"),
            include_spam_trash=include,
        )
    )


def _message(state: SandboxState, user: str, call: _Call) -> Response:
    return Response.json(
        state.get_message(
            user,
            call.path("id"),
            format=call.param("format"),
            metadata_headers=call.params("metadataHeaders"),
        )
    )


def _modify(state: SandboxState, user: str, call: _Call) -> Response:
    return Response.json(state.modify_message(user, call.path("id"), call.json()))


def _attachment(state: SandboxState, user: str, call: _Call) -> Response:
    return Response.json(
        state.get_attachment(user, call.path("message"), call.path("id"))
    )


_GMAIL_ROUTES: list[tuple[str, re.Pattern[str], str, _GmailHandler]] = [
    ("GET", _route(f"{_USER}/profile"), "getProfile", _profile),
    ("POST", _route(f"{_USER}/watch"), "watch", _watch),
    ("POST", _route(f"{_USER}/stop"), "stop", _stop),
    ("GET", _route(f"{_USER}/labels"), "labels.list", _labels),
    ("GET", _route(f"{_USER}/history"), "history.list", _history),
    ("GET", _route(f"{_USER}/messages"), "messages.list", _messages),
    ("GET", _route(f"{_USER}/messages/(?P<id>[^/]+)"), "messages.get", _message),
    (
        "POST",
        _route(f"{_USER}/messages/(?P<id>[^/]+)/modify"),
        "messages.modify",
        _modify,
    ),
    (
        "GET",
        _route(f"{_USER}/messages/(?P<message>[^/]+)/attachments/(?P<id>[^/]+)"),
        "messages.attachments.get",
        _attachment,
    ),
]


def _identity(headers: dict[str, str]) -> str | None:
    """The mailbox a request speaks for, from the sandbox header or bearer token."""
    explicit = headers.get(_USER_HEADER)
    if explicit:
        return explicit.strip().lower()

    authorization = headers.get("authorization")
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(_TOKEN_PREFIX):
        raise SandboxError(
            401,
            "Invalid Credentials: the sandbox accepts 'Bearer sandbox:<address>'",
            reason="authError",
        )
    return token.removeprefix(_TOKEN_PREFIX).strip().lower()


def _resolve_user(user_id: str, headers: dict[str, str]) -> str:
    identity = _identity(headers)
    if user_id != "me":
        address = user_id.lower()
        if identity is not None and identity != address:
            raise SandboxError(403, f"Delegation denied for {identity}")
        return address
    if identity is None:
        raise SandboxError(
            401,
            "Request is missing required authentication credential: send "
            "'X-Sandbox-User: <address>' or 'Authorization: Bearer sandbox:<address>'",
            reason="required",
        )
    return identity


class SandboxApp:
    """Routes requests to the state, then publishes and persists what changed."""

    def __init__(
        self,
        state: SandboxState,
        publisher: Publisher,
        *,
        state_file: StateFile | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.state = state
        self.publisher = publisher
        self.state_file = state_file
        self._sleep = sleep
        self._publish_lock = threading.Lock()
        self._published: deque[dict[str, Any]] = deque(maxlen=_NOTIFICATION_LOG_SIZE)
        self._admin_routes: list[tuple[str, re.Pattern[str], _AdminHandler]] = [
            ("GET", _route("/sandbox/v1/health"), SandboxApp._health),
            ("GET", _route("/sandbox/v1/mailboxes"), SandboxApp._list_mailboxes),
            ("POST", _route("/sandbox/v1/mailboxes"), SandboxApp._create_mailbox),
            (
                "GET",
                _route("/sandbox/v1/mailboxes/(?P<address>[^/]+)"),
                SandboxApp._get_mailbox,
            ),
            (
                "POST",
                _route("/sandbox/v1/mailboxes/(?P<address>[^/]+)/messages"),
                SandboxApp._deliver,
            ),
            (
                "DELETE",
                _route(
                    "/sandbox/v1/mailboxes/(?P<address>[^/]+)/messages/(?P<id>[^/]+)"
                ),
                SandboxApp._delete_message,
            ),
            (
                "POST",
                _route("/sandbox/v1/mailboxes/(?P<address>[^/]+)/history/expire"),
                SandboxApp._expire_history,
            ),
            ("GET", _route("/sandbox/v1/clock"), SandboxApp._get_clock),
            ("POST", _route("/sandbox/v1/clock/advance"), SandboxApp._advance_clock),
            ("GET", _route("/sandbox/v1/faults"), SandboxApp._list_faults),
            ("POST", _route("/sandbox/v1/faults"), SandboxApp._add_fault),
            ("DELETE", _route("/sandbox/v1/faults"), SandboxApp._clear_faults),
            ("GET", _route("/sandbox/v1/stats"), SandboxApp._stats),
            ("GET", _route("/sandbox/v1/notifications"), SandboxApp._notifications),
            ("POST", _route("/sandbox/v1/reset"), SandboxApp._reset),
        ]

    # ---------------------------------------------------------------- entry

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Response:
        """Answer one HTTP request; `headers` have lower-case names."""
        split = urlsplit(target)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)

        try:
            if path in BATCH_PATHS:
                response = self._batch(method, headers, body)
            elif path.startswith("/sandbox/"):
                response = self._admin(method, path, query, headers, body)
            else:
                response = self._gmail(method, path, query, headers, body)
        except SandboxError as error:
            response = Response.error(error)

        # Publish and persist before answering, so that a caller who sees the
        # response also sees its notification and its saved state.
        self._publish_outbox()
        self._persist()
        return response

    # ---------------------------------------------------------------- gmail

    def _gmail(
        self,
        method: str,
        path: str,
        query: Query,
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        for route_method, pattern, name, handler in _GMAIL_ROUTES:
            match = pattern.match(path)
            if match is None:
                continue
            if method != route_method:
                raise SandboxError(405, f"Method {method} not allowed on {name}")

            self.state.count_call(name)
            user = _resolve_user(unquote(match.group("user")), headers)
            self._apply_fault(name, user)
            self.state.require_mailbox(user)
            return handler(self.state, user, _Call(match, query, headers, body))

        raise SandboxError(404, f"No Gmail method at {method} {path} in the sandbox")

    def _apply_fault(self, method: str, user: str | None) -> None:
        fault = self.state.take_fault(method, user)
        if fault is None:
            return
        _LOG.info(
            "sandbox fault applied",
            extra={
                "method": method,
                "status": fault.status,
                "latency_ms": fault.latency_ms,
            },
        )
        if fault.latency_ms:
            self._sleep(fault.latency_ms / 1000)
        error = fault.error()
        if error is not None:
            raise error

    # ---------------------------------------------------------------- batch

    def _batch(self, method: str, headers: dict[str, str], body: bytes) -> Response:
        if method != "POST":
            raise SandboxError(405, "the batch endpoint takes POST")
        self.state.count_call("batch")
        self._apply_fault("batch", None)

        try:
            parts = parse_batch(headers.get("content-type", ""), body)
        except BatchFormatError as exc:
            raise SandboxError(400, f"Invalid batch request: {exc}") from exc
        if not parts:
            raise SandboxError(400, "Invalid batch request: no parts")
        if len(parts) > MAX_BATCH_PARTS:
            raise SandboxError(
                400,
                f"Too many requests in batch: {len(parts)} > {MAX_BATCH_PARTS}",
                reason="batchSizeTooLarge",
            )

        answers: list[PartResponse] = []
        for part in parts:
            # An embedded request without credentials borrows the envelope's.
            part_headers = {**headers, **part.headers}
            split = urlsplit(part.target)
            try:
                answer = self._gmail(
                    part.method,
                    split.path,
                    parse_qs(split.query, keep_blank_values=True),
                    part_headers,
                    part.body,
                )
            except SandboxError as error:
                answer = Response.error(error)
            answers.append(
                PartResponse(
                    part.content_id, answer.status, answer.content_type, answer.body
                )
            )

        content_type, payload = format_batch(answers)
        return Response(200, payload, content_type)

    # ------------------------------------------------------- after a request

    def _publish_outbox(self) -> None:
        with self._publish_lock:
            for notification in self.state.drain_notifications():
                entry: dict[str, Any] = {
                    "topic": notification.topic,
                    "email_address": notification.email_address,
                    "history_id": str(notification.history_id),
                    "at_ms": self.state.now_ms(),
                }
                try:
                    entry["message_id"] = self.publisher.publish(
                        notification.topic, notification.data()
                    )
                except Exception as exc:  # any publisher failure is counted, not raised
                    _LOG.warning(
                        "sandbox notification not published",
                        extra={"error": str(exc)},
                    )
                    entry["error"] = str(exc)
                    self.state.record_publish(ok=False)
                else:
                    self.state.record_publish(ok=True)
                self._published.append(entry)

    def _persist(self) -> None:
        if self.state_file is None:
            return
        try:
            self.state_file.save(self.state)
        except OSError:
            _LOG.exception("sandbox state not saved")

    # ---------------------------------------------------------------- admin

    def _admin(
        self,
        method: str,
        path: str,
        query: Query,
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        allowed: list[str] = []
        for route_method, pattern, handler in self._admin_routes:
            match = pattern.match(path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            return handler(self, _Call(match, query, headers, body))
        if allowed:
            raise SandboxError(405, f"{path} takes {', '.join(allowed)}, not {method}")
        raise SandboxError(404, f"No sandbox admin endpoint at {path}")

    def _health(self, call: _Call) -> Response:
        return Response.json({"ok": True})

    def _list_mailboxes(self, call: _Call) -> Response:
        return Response.json({"mailboxes": self.state.list_mailboxes()})

    def _create_mailbox(self, call: _Call) -> Response:
        address = call.json().get("address")
        if not isinstance(address, str):
            raise SandboxError(400, 'body must be {"address": "user@example.com"}')
        return Response.json(self.state.create_mailbox(address), 201)

    def _get_mailbox(self, call: _Call) -> Response:
        return Response.json(self.state.describe_mailbox(call.path("address")))

    def _deliver(self, call: _Call) -> Response:
        return Response.json(self.state.deliver(call.path("address"), call.json()), 201)

    def _delete_message(self, call: _Call) -> Response:
        return Response.json(
            self.state.delete_message(call.path("address"), call.path("id"))
        )

    def _expire_history(self, call: _Call) -> Response:
        before = call.json().get("before_id")
        if before is not None:
            if not str(before).isdigit():
                raise SandboxError(400, "before_id must be a history id (digits)")
            before = int(before)
        return Response.json(self.state.expire_history(call.path("address"), before))

    def _get_clock(self, call: _Call) -> Response:
        return Response.json({"now_ms": self.state.now_ms()})

    def _advance_clock(self, call: _Call) -> Response:
        seconds = call.json().get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise SandboxError(400, 'body must be {"seconds": <number>}')
        return Response.json({"now_ms": self.state.advance_clock(float(seconds))})

    def _list_faults(self, call: _Call) -> Response:
        return Response.json({"faults": self.state.list_faults()})

    def _add_fault(self, call: _Call) -> Response:
        spec = call.json()
        method = spec.get("method")
        status = spec.get("status")
        latency_ms = spec.get("latency_ms", 0)
        count = spec.get("count", 1)
        user = spec.get("user")
        reason = spec.get("reason")
        if not isinstance(method, str):
            raise SandboxError(400, 'a fault needs a method, e.g. "history.list"')
        if status is not None and not isinstance(status, int):
            raise SandboxError(400, "status must be an integer")
        if not isinstance(latency_ms, int) or not isinstance(count, int):
            raise SandboxError(400, "latency_ms and count must be integers")
        if user is not None and not isinstance(user, str):
            raise SandboxError(400, "user must be an address")
        if reason is not None and not isinstance(reason, str):
            raise SandboxError(400, "reason must be a string")
        fault = self.state.add_fault(
            method,
            status=status,
            latency_ms=latency_ms,
            count=count,
            user=user,
            reason=reason,
        )
        return Response.json(fault.to_json(), 201)

    def _clear_faults(self, call: _Call) -> Response:
        return Response.json({"cleared": self.state.clear_faults()})

    def _stats(self, call: _Call) -> Response:
        return Response.json(self.state.stats())

    def _notifications(self, call: _Call) -> Response:
        with self._publish_lock:
            return Response.json({"notifications": list(self._published)})

    def _reset(self, call: _Call) -> Response:
        self.state.reset()
        with self._publish_lock:
            self._published.clear()
        return Response.json({"ok": True})
