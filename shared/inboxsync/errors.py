"""The error tree every layer speaks.

    InboxsyncError
    ├── ConfigError            bad or missing configuration (start-up)
    ├── AuthError              request not authenticated        → 401
    │   └── ForbiddenError     authenticated, wrong identity    → 403
    ├── InvalidPayload         authenticated but unusable input → ACK + dead letter
    ├── TransientError         retry later (queue/Pub/Sub back off)  → 503
    │   ├── StoreUnavailable   Firestore unavailable / aborted / deadline
    │   ├── QueueUnavailable   Cloud Tasks unavailable
    │   ├── GmailRateLimited   Gmail 429 / rate-limit 403
    │   ├── GmailUnavailable   Gmail 5xx / timeout
    │   └── QuotaExhausted     our own per-mailbox budget is spent
    └── PermanentError         retrying cannot help → record, dead letter, ACK
        ├── HistoryExpired     history.list 404: the checkpoint is too old
        ├── MessageGone        messages.get 404: deleted after it was listed
        ├── CredentialsRevoked Gmail 401 / invalid_grant
        └── GmailRequestRejected other Gmail 4xx

Adapters translate SDK exceptions into these; nothing above the adapters
catches a Google SDK exception directly.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "CredentialsRevoked",
    "ForbiddenError",
    "GmailRateLimited",
    "GmailRequestRejected",
    "GmailUnavailable",
    "HistoryExpired",
    "InboxsyncError",
    "InvalidPayload",
    "MessageGone",
    "PermanentError",
    "QueueUnavailable",
    "QuotaExhausted",
    "StoreUnavailable",
    "TransientError",
]


class InboxsyncError(Exception):
    """Base of every error the product raises on purpose."""


class ConfigError(InboxsyncError):
    """Configuration is missing or invalid; the message names the setting."""


class AuthError(InboxsyncError):
    """The request carries no usable credentials (HTTP 401)."""


class ForbiddenError(AuthError):
    """The credentials are valid but belong to an identity not allowed (HTTP 403)."""


class InvalidPayload(InboxsyncError):
    """An authenticated request whose body cannot be used; retrying will not fix it."""


class TransientError(InboxsyncError):
    """Worth retrying later; `retry_after_s` is a hint for the caller."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreUnavailable(TransientError):
    """Firestore did not answer, or aborted the operation."""


class QueueUnavailable(TransientError):
    """Cloud Tasks did not accept the task."""


class GmailRateLimited(TransientError):
    """Gmail answered 429 or a rate-limit 403."""


class GmailUnavailable(TransientError):
    """Gmail answered 5xx or timed out."""


class QuotaExhausted(TransientError):
    """The per-mailbox Gmail quota budget is spent for now."""


class PermanentError(InboxsyncError):
    """Retrying cannot help: record it, dead-letter it, acknowledge."""


class HistoryExpired(PermanentError):
    """history.list answered 404: the stored checkpoint is too old, do a full sync."""


class MessageGone(PermanentError):
    """The message was deleted between being listed and being fetched."""


class CredentialsRevoked(PermanentError):
    """Gmail rejected the mailbox's credentials."""


class GmailRequestRejected(PermanentError):
    """Gmail rejected the request itself (a 4xx other than the ones above)."""
