"""Where the sandbox sends Gmail push notifications.

`Publisher` is the one-method interface; `PubsubEmulatorPublisher` talks REST
to a local Pub/Sub emulator, and `RecordingPublisher` keeps the messages in
memory for tests and for a sandbox started without an emulator.
"""

from __future__ import annotations

import base64
import threading
from typing import Protocol

import requests

__all__ = [
    "PublishError",
    "Publisher",
    "PubsubEmulatorPublisher",
    "RecordingPublisher",
]


class PublishError(Exception):
    """The notification could not be published."""


class Publisher(Protocol):
    def publish(self, topic: str, data: bytes) -> str:
        """Publish `data` to `topic` (`projects/P/topics/T`); return the message id."""
        ...


class PubsubEmulatorPublisher:
    """Publish through the Pub/Sub emulator's REST API at `host` (`HOST:PORT`)."""

    def __init__(
        self,
        host: str,
        *,
        timeout_s: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self._base_url = f"http://{host.removeprefix('http://').rstrip('/')}"
        self._timeout_s = timeout_s
        self._session = session or requests.Session()

    def publish(self, topic: str, data: bytes) -> str:
        url = f"{self._base_url}/v1/{topic}:publish"
        body = {"messages": [{"data": base64.b64encode(data).decode("ascii")}]}
        try:
            response = self._session.post(url, json=body, timeout=self._timeout_s)
        except requests.RequestException as exc:
            raise PublishError(f"publish to {topic} failed: {exc}") from exc
        if response.status_code != 200:
            raise PublishError(
                f"publish to {topic} answered {response.status_code}: "
                f"{response.text[:200]}"
            )
        message_ids = response.json().get("messageIds") or []
        if not message_ids:
            raise PublishError(f"publish to {topic} returned no message id")
        return str(message_ids[0])


class RecordingPublisher:
    """Keeps every published message in `published` as `(topic, data)` pairs.

    Set `fail` to make `publish` raise, to test what happens when Pub/Sub is down.
    """

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.fail = False
        self._lock = threading.Lock()

    def publish(self, topic: str, data: bytes) -> str:
        with self._lock:
            if self.fail:
                raise PublishError("recording publisher set to fail")
            self.published.append((topic, data))
            return str(len(self.published))
