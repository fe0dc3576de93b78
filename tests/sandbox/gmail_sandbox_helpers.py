"""Constants and helpers shared by the sandbox tests (imported by plain name)."""

from __future__ import annotations

from typing import Any

import google_auth_httplib2
import httplib2
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

from inboxsync.local.sandbox import SandboxServer

ALICE = "alice@example.com"
BOB = "bob@example.com"
TOPIC = "projects/sandbox-test/topics/gmail-push"


def gmail_service(server: SandboxServer, address: str | None) -> Any:
    """The real googleapiclient Gmail service, pointed at the sandbox.

    With an address, requests carry `Authorization: Bearer sandbox:<address>`;
    without one they carry no credentials at all.
    """
    if address is None:
        http: Any = httplib2.Http()
    else:
        credentials = Credentials(token=f"sandbox:{address}")
        http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http())
    return build(
        "gmail",
        "v1",
        http=http,
        client_options={"api_endpoint": server.url},
        static_discovery=True,
    )
