"""The shape both functions share: a request in, an outcome with a status out."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from inboxsync.auth import TokenVerifier
from inboxsync.errors import AuthError, ForbiddenError, TransientError

__all__ = ["Handler", "IncomingRequest", "Outcome", "check_caller", "log_outcome"]


@dataclass(frozen=True)
class IncomingRequest:
    """An HTTP request as the product logic sees it."""

    headers: Mapping[str, str]
    body: bytes
    body_truncated: bool = False
    body_length: int | None = None  # declared Content-Length, when truncated

    def header(self, name: str) -> str | None:
        """A header value, whatever the case of its name."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class Outcome:
    """What happened, and the HTTP status that tells the caller about it."""

    status: int
    outcome: str
    detail: str = ""
    retry_after_s: float | None = None


class Handler(Protocol):
    """What an entry point needs from the object behind it."""

    max_body_bytes: int
    project: str

    def handle(self, request: IncomingRequest) -> Outcome: ...


def check_caller(
    verifier: TokenVerifier | None, request: IncomingRequest
) -> Outcome | None:
    """None when the caller may go on; otherwise the answer to give it.

    401 without a valid Google-signed token, 403 for a valid token of an
    identity not allowed, 503 when Google's certificates cannot be fetched.
    `verifier` is None only in local mode.
    """
    if verifier is None:
        return None
    try:
        verifier.verify(request.header("authorization"))
    except ForbiddenError as exc:
        return Outcome(403, "forbidden", str(exc))
    except AuthError as exc:
        return Outcome(401, "unauthenticated", str(exc))
    except TransientError as exc:
        return Outcome(503, "unavailable", str(exc), exc.retry_after_s)
    return None


def log_outcome(
    logger: logging.Logger,
    unit: str,
    outcome: Outcome,
    *,
    started: float,
    level: int,
    fields: Mapping[str, Any],
) -> None:
    """The one log line of a request: what happened, its status and duration."""
    logger.log(
        level,
        "%s %s",
        unit,
        outcome.outcome,
        extra={
            **fields,
            "outcome": outcome.outcome,
            "status": outcome.status,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
