"""A local stand-in for the Gmail v1 REST API, for tests and the local stack.

Point googleapiclient at it with
`build("gmail", "v1", http=..., client_options={"api_endpoint": server.url})`.
Batches need `BatchHttpRequest(batch_uri=server.batch_url)`: the client's own
`new_batch_http_request()` always targets the public Gmail host, whatever
`api_endpoint` says. The README's "Gmail sandbox" section describes the admin API.
"""

from __future__ import annotations

from .admin import Delivery, SandboxAdmin, SandboxAdminError
from .publisher import (
    Publisher,
    PublishError,
    PubsubEmulatorPublisher,
    RecordingPublisher,
)
from .server import SandboxServer
from .state import FakeClock, Notification, SandboxError, SandboxState

__all__ = [
    "Delivery",
    "FakeClock",
    "Notification",
    "PublishError",
    "Publisher",
    "PubsubEmulatorPublisher",
    "RecordingPublisher",
    "SandboxAdmin",
    "SandboxAdminError",
    "SandboxError",
    "SandboxServer",
    "SandboxState",
]
