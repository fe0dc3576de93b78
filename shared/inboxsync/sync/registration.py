"""Adding a mailbox to the product (called by the CLI)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from inboxsync import ids
from inboxsync.errors import ConfigError
from inboxsync.sync.models import STATUS_ACTIVE, STATUS_DISABLED

__all__ = ["AUTH_MODES", "MailboxRegistry", "register_mailbox"]

AUTH_MODES = ("delegated", "oauth", "none")


class MailboxRegistry(Protocol):
    def upsert_mailbox(self, mailbox_id: str, fields: Mapping[str, Any]) -> None:
        """Create or merge into `mailboxes/{id}`; a checkpoint given only grows."""
        ...


def register_mailbox(
    registry: MailboxRegistry,
    address: str,
    *,
    auth: str = "delegated",
    oauth_secret: str | None = None,
    history_id: int | None = None,
    enabled: bool = True,
    now: datetime | None = None,
) -> str:
    """Create or update `mailboxes/{hash}` and return the hash.

    `auth` is `delegated` (Workspace domain-wide delegation), `oauth` (the user's
    refresh token in the Secret Manager secret `oauth_secret`, a full resource
    name) or `none` (the local Gmail sandbox). `history_id`, e.g. from a
    users.watch answer, starts syncing from there; without it the first sync is
    a bounded full sync. Registering again re-enables a mailbox left in error
    and never moves its checkpoint back.
    """
    address = address.strip()
    if "@" not in address:
        raise ConfigError(f"not an e-mail address: {address!r}")
    if auth not in AUTH_MODES:
        raise ConfigError(f"auth must be one of {', '.join(AUTH_MODES)}, got {auth!r}")
    if auth == "oauth" and not (oauth_secret and oauth_secret.startswith("projects/")):
        raise ConfigError(
            "auth=oauth needs oauth_secret: the Secret Manager secret holding the"
            " refresh token, as projects/P/secrets/NAME"
        )
    mailbox_id = ids.mailbox_id(address)
    fields: dict[str, Any] = {
        "address": address.lower(),
        "status": STATUS_ACTIVE if enabled else STATUS_DISABLED,
        "auth": auth,
        "oauthSecret": oauth_secret if auth == "oauth" else None,
        "lastError": None,
        "registeredAt": now or datetime.now(UTC),
    }
    if history_id is not None:
        fields["checkpointHistoryId"] = int(history_id)
    registry.upsert_mailbox(mailbox_id, fields)
    return mailbox_id
