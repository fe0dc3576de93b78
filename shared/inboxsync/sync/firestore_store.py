"""Firestore adapter of the sync engine: `mailboxes`, `processed_messages`, `actions`.

The lease and the pending-work mark live on the mailbox document. Nothing here
uses a read-write transaction: the emulator (and, under load, the service)
serialises transactions on one document behind a lock wait, and a burst of
tasks for one mailbox all touch that document. Instead:
- the checkpoint and the pending mark only ever grow, through the server-side
  `Maximum` transform, so no write can move them back whatever the order;
- taking and releasing the lease are writes conditioned on the update time of
  the snapshot they were decided from; a concurrent write makes them fail and
  they are decided again from a fresh read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from inboxsync import ids
from inboxsync.adapters.firestore import (
    ACTIONS,
    MAILBOXES,
    PROCESSED_MESSAGES,
    FirestoreStore,
    create_document,
    store_errors,
)
from inboxsync.errors import StoreUnavailable
from inboxsync.sync.lease import lease_is_free, needs_another_pass
from inboxsync.sync.models import (
    STATUS_ACTIVE,
    STATUS_ERROR,
    ActionState,
    Mailbox,
    QuotaState,
)

__all__ = ["SyncFirestore"]

_Snapshot = firestore.DocumentSnapshot
_CONDITIONAL_ATTEMPTS = 8
_FINISHED_MESSAGE_STATES = {"done", "gone"}


class SyncFirestore:
    """MailboxStore, MessageLedger, ActionLedger and DeadLetterStore on Firestore."""

    def __init__(self, client: firestore.Client, *, timeout_s: float = 5.0) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._shared = FirestoreStore(client, timeout_s=timeout_s)

    @property
    def client(self) -> firestore.Client:
        return self._client

    def _mailbox_ref(self, mailbox_id: str) -> firestore.DocumentReference:
        return self._client.collection(MAILBOXES).document(mailbox_id)

    def _read(self, ref: firestore.DocumentReference) -> _Snapshot[Any]:
        with store_errors("read"):
            return ref.get(timeout=self._timeout_s)

    def _update(
        self,
        ref: firestore.DocumentReference,
        fields: Mapping[str, Any],
        snapshot: _Snapshot[Any] | None = None,
    ) -> bool:
        """Update; given a snapshot, only if unchanged since read (else False)."""
        option = None
        if snapshot is not None:
            option = self._client.write_option(last_update_time=snapshot.update_time)
        with store_errors("update"):
            try:
                ref.update(dict(fields), option=option, timeout=self._timeout_s)
            except (gexc.FailedPrecondition, gexc.Aborted):
                if snapshot is None:
                    raise
                return False
        return True

    # --- registration -----------------------------------------------------------
    def upsert_mailbox(self, mailbox_id: str, fields: Mapping[str, Any]) -> None:
        data = dict(fields)
        history_id = data.pop("checkpointHistoryId", None)
        if history_id is not None:
            data["checkpointHistoryId"] = firestore.Maximum(history_id)
        with store_errors("register mailbox"):
            self._mailbox_ref(mailbox_id).set(data, merge=True, timeout=self._timeout_s)

    # --- MailboxStore -------------------------------------------------------------
    def get_mailbox(self, mailbox_id: str) -> Mailbox | None:
        snapshot = self._read(self._mailbox_ref(mailbox_id))
        return _to_mailbox(snapshot) if snapshot.exists else None

    def list_mailboxes(self) -> list[Mailbox]:
        """Every registered mailbox (an operator's listing, not a hot path)."""
        with store_errors("list mailboxes"):
            snapshots = list(self._client.collection(MAILBOXES).stream())
        return [_to_mailbox(snapshot) for snapshot in snapshots]

    def acquire_lease(
        self,
        mailbox_id: str,
        owner: str,
        wanted_history_id: int,
        *,
        now: datetime,
        lease_s: float,
    ) -> Mailbox | None:
        ref = self._mailbox_ref(mailbox_id)
        marked = False
        for _ in range(_CONDITIONAL_ATTEMPTS):
            snapshot = self._read(ref)
            if not snapshot.exists:
                return None
            mailbox = _to_mailbox(snapshot)
            if lease_is_free(mailbox, owner, now):
                expires_at = now + timedelta(seconds=lease_s)
                taken = self._update(
                    ref,
                    {
                        "leaseOwner": owner,
                        "leaseExpiresAt": expires_at,
                        "pendingHistoryId": firestore.Maximum(wanted_history_id),
                    },
                    snapshot,
                )
                if taken:
                    return replace(
                        mailbox,
                        lease_owner=owner,
                        lease_expires_at=expires_at,
                        pending_history_id=max(
                            mailbox.pending_history_id, wanted_history_id
                        ),
                    )
                continue
            if marked:
                # The holder still held the lease after our mark landed, so its
                # conditional release either sees the mark or fails and rereads.
                return None
            self._update(
                ref, {"pendingHistoryId": firestore.Maximum(wanted_history_id)}
            )
            marked = True
        raise StoreUnavailable("mailbox lease: too much contention, try again")

    def advance_checkpoint(
        self,
        mailbox_id: str,
        history_id: int,
        *,
        quota: QuotaState,
        now: datetime,
        lease_s: float,
    ) -> None:
        self._update(
            self._mailbox_ref(mailbox_id),
            {
                "checkpointHistoryId": firestore.Maximum(history_id),
                "leaseExpiresAt": now + timedelta(seconds=lease_s),
                "lastSyncAt": now,
                **_quota_fields(quota),
            },
        )

    def renew_lease(
        self, mailbox_id: str, owner: str, *, now: datetime, lease_s: float
    ) -> bool:
        ref = self._mailbox_ref(mailbox_id)
        for _ in range(_CONDITIONAL_ATTEMPTS):
            snapshot = self._read(ref)
            if not snapshot.exists or _to_mailbox(snapshot).lease_owner != owner:
                return False
            expires_at = now + timedelta(seconds=lease_s)
            if self._update(ref, {"leaseExpiresAt": expires_at}, snapshot):
                return True
        raise StoreUnavailable("mailbox lease renewal: too much contention")

    def release_lease(
        self,
        mailbox_id: str,
        owner: str,
        *,
        quota: QuotaState,
        now: datetime,
        lease_s: float,
        force: bool = False,
    ) -> Mailbox | None:
        ref = self._mailbox_ref(mailbox_id)
        for _ in range(_CONDITIONAL_ATTEMPTS):
            snapshot = self._read(ref)
            if not snapshot.exists:
                return None
            mailbox = _to_mailbox(snapshot)
            if mailbox.lease_owner != owner:
                return None  # it expired and someone else holds it now
            if not force and needs_another_pass(mailbox):
                expires_at = now + timedelta(seconds=lease_s)
                fields = {"leaseExpiresAt": expires_at, **_quota_fields(quota)}
                if self._update(ref, fields, snapshot):
                    return replace(mailbox, lease_expires_at=expires_at, quota=quota)
                continue
            fields = {
                "leaseOwner": None,
                "leaseExpiresAt": None,
                "lastSyncAt": now,
                **_quota_fields(quota),
            }
            if self._update(ref, fields, snapshot):
                return None
        raise StoreUnavailable("mailbox lease release: too much contention")

    def mark_error(self, mailbox_id: str, error: str, *, now: datetime) -> None:
        self._update(
            self._mailbox_ref(mailbox_id),
            {"status": STATUS_ERROR, "lastError": error[:1000], "lastErrorAt": now},
        )

    def note_skipped(self, mailbox_id: str, *, now: datetime) -> None:
        self._update(
            self._mailbox_ref(mailbox_id),
            {"skippedNotifications": firestore.Increment(1), "lastSkippedAt": now},
        )

    # --- MessageLedger ----------------------------------------------------------
    def _message_ref(
        self, mailbox_id: str, message_id: str
    ) -> firestore.DocumentReference:
        key = ids.message_key(mailbox_id, message_id)
        return self._client.collection(PROCESSED_MESSAGES).document(key)

    def claim_message(
        self, mailbox_id: str, message_id: str, *, expires_at: datetime
    ) -> bool:
        ref = self._message_ref(mailbox_id, message_id)
        created = create_document(
            ref,
            {
                "mailboxId": mailbox_id,
                "messageId": message_id,
                "state": "claimed",
                "claimedAt": firestore.SERVER_TIMESTAMP,
                "expiresAt": expires_at,
            },
            timeout_s=self._timeout_s,
        )
        if created:
            return True
        # A marker left `claimed` means a worker died before finishing the
        # message: process it again (its actions are deduplicated one by one).
        snapshot = self._read(ref)
        return snapshot.get("state") not in _FINISHED_MESSAGE_STATES

    def finish_message(self, mailbox_id: str, message_id: str, outcome: str) -> None:
        self._update(
            self._message_ref(mailbox_id, message_id),
            {"state": outcome, "finishedAt": firestore.SERVER_TIMESTAMP},
        )

    # --- ActionLedger -------------------------------------------------------------
    def _action_ref(self, record_id: str) -> firestore.DocumentReference:
        return self._client.collection(ACTIONS).document(record_id)

    def begin_action(
        self, record_id: str, fields: Mapping[str, Any], *, expires_at: datetime
    ) -> str:
        ref = self._action_ref(record_id)
        created = create_document(
            ref,
            {
                **fields,
                "state": "started",
                "attempts": 1,
                "startedAt": firestore.SERVER_TIMESTAMP,
                "expiresAt": expires_at,
            },
            timeout_s=self._timeout_s,
        )
        if created:
            return ActionState.NEW
        state = self._read(ref).get("state")
        if state == "done":
            return ActionState.DONE
        if state == "failed":
            return ActionState.FAILED
        self._update(
            ref,
            {
                "attempts": firestore.Increment(1),
                "startedAt": firestore.SERVER_TIMESTAMP,
            },
        )
        return ActionState.RETRY

    def finish_action(self, record_id: str, result: Mapping[str, Any]) -> None:
        self._update(
            self._action_ref(record_id),
            {
                "state": "done",
                "result": dict(result),
                "doneAt": firestore.SERVER_TIMESTAMP,
            },
        )

    def fail_action(self, record_id: str, error: str) -> None:
        self._update(
            self._action_ref(record_id),
            {
                "state": "failed",
                "error": error[:1000],
                "failedAt": firestore.SERVER_TIMESTAMP,
            },
        )

    # --- shared with the push receiver ------------------------------------------
    def put_dead_letter(
        self, kind: str, key: str, payload: Mapping[str, Any], error: str
    ) -> str:
        return self._shared.put_dead_letter(kind, key, payload, error)

    def mark_push_event_dispatched(self, event_id: str) -> None:
        self._shared.mark_push_event_dispatched(event_id)


def _quota_fields(quota: QuotaState) -> dict[str, Any]:
    return {
        "quotaWindowStart": quota.window_start_s,
        "quotaUsedUnits": quota.used_units,
    }


def _to_mailbox(snapshot: _Snapshot[Any]) -> Mailbox:
    data = snapshot.to_dict() or {}
    checkpoint = data.get("checkpointHistoryId")
    return Mailbox(
        mailbox_id=snapshot.id,
        address=str(data.get("address", "")),
        status=str(data.get("status", STATUS_ACTIVE)),
        auth=str(data.get("auth", "none")),
        oauth_secret=data.get("oauthSecret") or None,
        checkpoint=int(checkpoint) if checkpoint is not None else None,
        pending_history_id=int(data.get("pendingHistoryId") or 0),
        lease_owner=data.get("leaseOwner") or None,
        lease_expires_at=data.get("leaseExpiresAt"),
        quota=QuotaState(
            float(data.get("quotaWindowStart") or 0.0),
            int(data.get("quotaUsedUnits") or 0),
        ),
    )
