"""How the Gmail adapter maps Gmail's error answers onto the product's error tree."""

from __future__ import annotations

import json

import httplib2
import pytest
from googleapiclient.errors import HttpError

from inboxsync.adapters.gmail import translate_error
from inboxsync.errors import (
    CredentialsRevoked,
    GmailRateLimited,
    GmailRequestRejected,
    GmailUnavailable,
    HistoryExpired,
    MessageGone,
    PermanentError,
    TransientError,
)


def http_error(
    status: int, reason: str = "", headers: dict[str, str] | None = None
) -> HttpError:
    """An HttpError shaped like Gmail's JSON error answer."""
    response = httplib2.Response({"status": str(status), **(headers or {})})
    errors = [{"domain": "usageLimits", "reason": reason}] if reason else []
    content = json.dumps(
        {"error": {"code": status, "message": reason or "error", "errors": errors}}
    ).encode()
    return HttpError(response, content)


@pytest.mark.parametrize(
    ("method", "status", "reason", "expected"),
    [
        ("history.list", 404, "notFound", HistoryExpired),
        ("messages.get", 404, "notFound", MessageGone),
        ("messages.modify", 404, "notFound", GmailRequestRejected),
        ("history.list", 429, "rateLimitExceeded", GmailRateLimited),
        ("history.list", 403, "rateLimitExceeded", GmailRateLimited),
        ("messages.get", 403, "userRateLimitExceeded", GmailRateLimited),
        ("history.list", 403, "dailyLimitExceeded", GmailRateLimited),
        ("history.list", 403, "quotaExceeded", GmailRateLimited),
        ("history.list", 403, "forbidden", GmailRequestRejected),
        ("history.list", 403, "insufficientPermissions", GmailRequestRejected),
        ("history.list", 401, "authError", CredentialsRevoked),
        ("history.list", 500, "backendError", GmailUnavailable),
        ("history.list", 503, "", GmailUnavailable),
        ("history.list", 400, "invalidArgument", GmailRequestRejected),
    ],
)
def test_gmail_http_errors_are_mapped_by_status_and_reason(
    method: str, status: int, reason: str, expected: type[Exception]
) -> None:
    error = translate_error(method, http_error(status, reason))

    assert type(error) is expected


def test_project_quota_is_transient_and_never_marks_the_mailbox_in_error() -> None:
    daily = translate_error("history.list", http_error(403, "dailyLimitExceeded"))

    assert isinstance(daily, TransientError)
    assert not isinstance(daily, PermanentError)


def test_retry_after_of_a_rate_limit_is_kept() -> None:
    error = translate_error(
        "history.list", http_error(429, "rateLimitExceeded", {"retry-after": "17"})
    )

    assert isinstance(error, GmailRateLimited)
    assert error.retry_after_s == 17.0
