"""A thin Python client for the sandbox admin API (`/sandbox/v1/...`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

__all__ = ["Delivery", "SandboxAdmin", "SandboxAdminError"]


class SandboxAdminError(Exception):
    """The admin API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Delivery:
    """What `deliver` created."""

    message_ids: list[str]
    history_id: str
    label_ids: list[str]


class SandboxAdmin:
    """Drive a running sandbox: mailboxes, mail, clock, faults, stats.

    `base_url` is the sandbox root (the `gmail_api_url` it printed at start).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._session = session or requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._session.request(
            method,
            f"{self.base_url}/sandbox/v1/{path}",
            json=body,
            timeout=self._timeout_s,
        )
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:500]
            raise SandboxAdminError(response.status_code, str(message))
        return response.json()

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._session.close()

    @staticmethod
    def _mailbox_path(address: str) -> str:
        return f"mailboxes/{quote(address, safe='@')}"

    def health(self) -> bool:
        return bool(self._call("GET", "health").get("ok"))

    def create_mailbox(self, address: str) -> dict[str, Any]:
        """Create an empty mailbox; 409 if it exists."""
        result: dict[str, Any] = self._call("POST", "mailboxes", {"address": address})
        return result

    def list_mailboxes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "mailboxes")["mailboxes"]
        return result

    def get_mailbox(self, address: str) -> dict[str, Any]:
        """History id, history floor, message count and watch of one mailbox."""
        result: dict[str, Any] = self._call("GET", self._mailbox_path(address))
        return result

    def deliver(
        self,
        address: str,
        *,
        sender: str | None = None,
        to: str | None = None,
        subject: str | None = None,
        body: str | None = None,
        labels: list[str] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        raw: str | None = None,
        count: int = 1,
        thread_id: str | None = None,
        internal_date_ms: int | None = None,
    ) -> Delivery:
        """Deliver `count` messages; the README lists the fields."""
        spec: dict[str, Any] = {"count": count}
        for name, value in (
            ("sender", sender),
            ("to", to),
            ("subject", subject),
            ("body", body),
            ("labels", labels),
            ("attachments", attachments),
            ("raw", raw),
            ("thread_id", thread_id),
            ("internal_date_ms", internal_date_ms),
        ):
            if value is not None:
                spec[name] = value
        result = self._call("POST", f"{self._mailbox_path(address)}/messages", spec)
        return Delivery(
            result["message_ids"], result["history_id"], result["label_ids"]
        )

    def delete_message(self, address: str, message_id: str) -> str:
        """Delete a message for good; returns the new history id."""
        path = f"{self._mailbox_path(address)}/messages/{quote(message_id, safe='')}"
        result: str = self._call("DELETE", path)["history_id"]
        return result

    def expire_history(self, address: str, before_id: str | int | None = None) -> str:
        """Make start ids below `before_id` (default: all so far) answer 404."""
        body = {} if before_id is None else {"before_id": str(before_id)}
        path = f"{self._mailbox_path(address)}/history/expire"
        result: str = self._call("POST", path, body)["history_floor"]
        return result

    def now_ms(self) -> int:
        return int(self._call("GET", "clock")["now_ms"])

    def advance_clock(self, seconds: float) -> int:
        """Move the sandbox clock forward; returns the new time in epoch ms."""
        return int(self._call("POST", "clock/advance", {"seconds": seconds})["now_ms"])

    def inject_fault(
        self,
        method: str,
        *,
        status: int | None = None,
        latency_ms: int = 0,
        count: int = 1,
        user: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Make the next `count` calls of `method` (e.g. "history.list") misbehave."""
        spec: dict[str, Any] = {
            "method": method,
            "latency_ms": latency_ms,
            "count": count,
        }
        if status is not None:
            spec["status"] = status
        if user is not None:
            spec["user"] = user
        if reason is not None:
            spec["reason"] = reason
        result: dict[str, Any] = self._call("POST", "faults", spec)
        return result

    def list_faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "faults")["faults"]
        return result

    def clear_faults(self) -> int:
        return int(self._call("DELETE", "faults")["cleared"])

    def stats(self) -> dict[str, Any]:
        """Calls per method, faults applied, notifications published and dropped."""
        result: dict[str, Any] = self._call("GET", "stats")
        return result

    def notifications(self) -> list[dict[str, Any]]:
        """The notifications published so far (the last 1000)."""
        result: list[dict[str, Any]] = self._call("GET", "notifications")[
            "notifications"
        ]
        return result

    def reset(self) -> None:
        """Forget all mailboxes, faults, stats and clock changes."""
        self._call("POST", "reset")
