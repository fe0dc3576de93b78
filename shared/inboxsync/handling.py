"""The shape both functions share: a request in, an outcome with a status out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Handler", "IncomingRequest", "Outcome"]


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
