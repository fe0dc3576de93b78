"""Drive a running local stack: add mailboxes, deliver mail, push, count results.

Shared by the `inboxsync` CLI, the `make run` demo and the end-to-end tests,
so all three exercise the stack the same way.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

from inboxsync import ids
from inboxsync.adapters.firestore import (
    ACTIONS,
    DEAD_LETTERS,
    PROCESSED_MESSAGES,
    PUSH_EVENTS,
    make_client,
)
from inboxsync.adapters.gmail import GmailApiConnector
from inboxsync.config import CommonSettings
from inboxsync.local.sandbox import SandboxAdmin
from inboxsync.local.stack import StackStatus
from inboxsync.sync.firestore_store import SyncFirestore
from inboxsync.sync.models import Mailbox

__all__ = ["PipelineCounts", "StackClient"]

_SCOPES = ("https://www.googleapis.com/auth/gmail.modify",)


@dataclass(frozen=True)
class PipelineCounts:
    """What the pipeline recorded in Firestore, counted by state."""

    push_events: int
    messages: Counter[str]
    actions: Counter[str]
    dead_letters: Counter[str]


class StackClient:
    def __init__(self, status: StackStatus) -> None:
        self.status = status
        self.admin = SandboxAdmin(status.gmail_api_url)
        self._http = requests.Session()
        self.firestore = make_client(
            CommonSettings(
                project=status.project,
                firestore_database="(default)",
                local_mode=True,
                log_level="INFO",
                firestore_emulator_host=status.firestore_emulator_host,
                tasks_emulator_host=status.tasks_emulator_host,
            )
        )

    def close(self) -> None:
        self.admin.close()
        self._http.close()
        self.firestore.close()  # type: ignore[no-untyped-call]

    # -- Gmail side --------------------------------------------------------

    def gmail_connector(self) -> GmailApiConnector:
        """The production Gmail adapter, pointed at the sandbox."""
        return GmailApiConnector(api_url=self.status.gmail_api_url, scopes=_SCOPES)

    def add_mailbox(self, address: str) -> dict[str, Any]:
        """Create the sandbox mailbox, register it with the pipeline, watch it."""
        from inboxsync.local.sandbox import SandboxAdminError
        from inboxsync.onboarding import add_mailbox

        try:
            self.admin.create_mailbox(address)
        except SandboxAdminError as exc:
            if exc.status != 409:  # an existing mailbox is fine: re-register it
                raise
        watched = add_mailbox(
            self.sync_store(),
            self.gmail_connector(),
            address,
            topic=self.status.topic,
            auth="none",
        )
        return {
            "mailbox_id": watched.mailbox_id,
            "history_id": watched.history_id,
            "watch_expires_at": watched.watch_expires_at.isoformat(),
        }

    def sync_store(self) -> SyncFirestore:
        return SyncFirestore(self.firestore)

    def deliver(
        self,
        address: str,
        *,
        subject: str | None = None,
        sender: str | None = None,
        labels: list[str] | None = None,
        attachments: list[str] | None = None,
        count: int = 1,
    ) -> list[str]:
        """Deliver mail into the sandbox (which notifies like Gmail); new ids."""
        files = [
            {"filename": name, "content_type": "application/octet-stream", "size": 64}
            for name in attachments or []
        ]
        delivery = self.admin.deliver(
            address,
            subject=subject,
            sender=sender,
            labels=labels or ["INBOX", "UNREAD"],
            attachments=files or None,
            count=count,
        )
        return list(delivery.message_ids)

    # -- Pub/Sub side ------------------------------------------------------

    def publish(self, address: str, history_id: int | None = None) -> str:
        """Publish a Gmail-style notification to the topic; its Pub/Sub id."""
        if history_id is None:
            mailbox = Mailbox(ids.mailbox_id(address), address, auth="none")
            gmail = self.gmail_connector().for_mailbox(mailbox)
            history_id = gmail.get_profile_history_id()
        data = json.dumps({"emailAddress": address, "historyId": history_id})
        response = self._http.post(
            f"http://{self.status.pubsub_emulator_host}/v1/{self.status.topic}:publish",
            json={"messages": [{"data": base64.b64encode(data.encode()).decode()}]},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["messageIds"][0])

    def push(self, data: str, message_id: str | None = None) -> requests.Response:
        """POST a push envelope straight to receive_push, as Pub/Sub would."""
        envelope = {
            "message": {
                "data": base64.b64encode(data.encode()).decode(),
                "messageId": message_id or f"cli-{uuid.uuid4().hex}",
                "publishTime": "1970-01-01T00:00:00Z",
            },
            "subscription": self.status.subscription,
        }
        return self._http.post(self.status.push_url, json=envelope, timeout=30)

    # -- results -----------------------------------------------------------

    def counts(self) -> PipelineCounts:
        def by_state(collection: str, field: str = "state") -> Counter[str]:
            docs = self.firestore.collection(collection).stream()
            return Counter(str(doc.get(field)) for doc in docs)

        return PipelineCounts(
            push_events=sum(by_state(PUSH_EVENTS).values()),
            messages=by_state(PROCESSED_MESSAGES),
            actions=by_state(ACTIONS),
            dead_letters=by_state(DEAD_LETTERS, "kind"),
        )

    def action_records(self) -> list[dict[str, Any]]:
        return [
            doc.to_dict() or {} for doc in self.firestore.collection(ACTIONS).stream()
        ]

    def message_done(self, address: str, gmail_id: str) -> bool:
        key = ids.message_key(ids.mailbox_id(address), gmail_id)
        snapshot = self.firestore.collection(PROCESSED_MESSAGES).document(key).get()
        return bool(snapshot.exists and snapshot.get("state") != "claimed")
