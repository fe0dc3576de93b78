"""Gmail adapter: googleapiclient behind the sync engine's MailboxGmail interface.

Credentials per mailbox `auth` mode:
- `none`: the local Gmail sandbox (INBOXSYNC_GMAIL_API_URL), which accepts
  `Bearer sandbox:<address>` as the caller's identity;
- `delegated`: Workspace domain-wide delegation. The JWT asserting the user is
  signed by IAM Credentials signJwt for the delegation service account, so no
  key file exists anywhere, then exchanged at the OAuth token endpoint;
- `oauth`: a consumer account's refresh token, kept as JSON
  `{client_id, client_secret, refresh_token}` in a Secret Manager secret read
  through its REST API.

Both call Google as the runtime identity (`google.auth.default()`, the metadata
server on Cloud Functions). Credentials are built on the first Gmail call of a
sync, inside the engine's error handling, and kept per mailbox; google-auth
refreshes their token when it is within a few minutes of expiry.

Every failure leaves this module as the product's error tree (see
`translate_error`).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import google.auth
import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_exceptions
from google.auth import transport
from google.auth.credentials import Credentials as BaseCredentials
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import _client as oauth2_client
from google.oauth2 import credentials as user_credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from inboxsync.errors import (
    ConfigError,
    CredentialsRevoked,
    GmailRateLimited,
    GmailRequestRejected,
    GmailUnavailable,
    HistoryExpired,
    InboxsyncError,
    MessageGone,
)
from inboxsync.sync.models import (
    GmailMessage,
    HistoryChange,
    HistoryPage,
    Mailbox,
    MessageFormat,
    MessagePage,
)

__all__ = ["GmailApiConnector", "GmailApiMailbox", "translate_error"]

GMAIL_ROOT = "https://gmail.googleapis.com/"
TOKEN_URI = "https://oauth2.googleapis.com/token"
SECRET_MANAGER = "https://secretmanager.googleapis.com/v1/"
IAM_CREDENTIALS = "https://iamcredentials.googleapis.com/v1/"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
METADATA_HEADERS = ["From", "To", "Subject", "Date"]
# Gmail answers 403 both for "not allowed" (permanent) and for spent quota: the
# per-user rate, and the project's daily or per-minute quota, which refill.
_RATE_REASONS = {
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "RATE_LIMIT_EXCEEDED",
    "dailyLimitExceeded",
    "quotaExceeded",
}
# OAuth token endpoint answers (RFC 6749 section 5.2) that retrying cannot fix:
# a revoked or expired refresh token, a deleted client, delegation not granted.
_OAUTH_PERMANENT_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
}
_DELEGATION_LIFETIME_S = 3600
_HISTORY_TYPES = ["messageAdded", "labelAdded"]
_HISTORY_PAGE_SIZE = 500


class GmailApiConnector:
    """Builds an authorised Gmail client per mailbox; credentials are cached.

    The Google endpoints default to production; tests point them at local
    stand-ins. `source_credentials` is the runtime identity that reads secrets
    and calls signJwt (default: `google.auth.default()`).
    """

    def __init__(
        self,
        *,
        api_url: str | None,
        scopes: Sequence[str],
        timeout_s: float = 30.0,
        delegation_account: str | None = None,
        token_uri: str = TOKEN_URI,
        secret_manager_url: str = SECRET_MANAGER,
        iam_credentials_url: str = IAM_CREDENTIALS,
        source_credentials: BaseCredentials | None = None,
    ) -> None:
        self._root = (api_url or GMAIL_ROOT).rstrip("/") + "/"
        self._sandbox = api_url is not None
        self._scopes = list(scopes)
        self._timeout_s = timeout_s
        self._delegation_account = delegation_account
        self._token_uri = token_uri
        self._secret_manager = secret_manager_url.rstrip("/") + "/"
        self._iam_credentials = iam_credentials_url.rstrip("/") + "/"
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str | None], BaseCredentials] = {}
        self._source: tuple[BaseCredentials, str | None] | None = None
        if source_credentials is not None:
            self._source = (
                source_credentials,
                getattr(source_credentials, "service_account_email", None),
            )

    def for_mailbox(self, mailbox: Mailbox) -> GmailApiMailbox:
        # No network here: the engine calls this before its error handling, so
        # reading a secret or refreshing a token waits for the first Gmail call.
        return GmailApiMailbox(
            lambda: self._service(mailbox),
            batch_uri=f"{self._root}batch/gmail/v1",
            on_revoked=lambda: self.forget(mailbox),
        )

    def forget(self, mailbox: Mailbox) -> None:
        """Drop a mailbox's credentials, so the next sync builds them again."""
        with self._lock:
            self._cache.pop(_cache_key(mailbox), None)

    def _service(self, mailbox: Mailbox) -> Any:
        credentials = self._credentials(mailbox)
        http = google_auth_httplib2.AuthorizedHttp(
            credentials, http=httplib2.Http(timeout=int(self._timeout_s))
        )
        options = {"api_endpoint": self._root} if self._sandbox else None
        return build(
            "gmail",
            "v1",
            http=http,
            client_options=options,
            static_discovery=True,
            cache_discovery=False,
        )

    def _credentials(self, mailbox: Mailbox) -> BaseCredentials:
        with self._lock:
            cached = self._cache.get(_cache_key(mailbox))
            if cached is not None:
                return cached
            credentials = self._new_credentials(mailbox)
            self._cache[_cache_key(mailbox)] = credentials
            return credentials

    def _new_credentials(self, mailbox: Mailbox) -> BaseCredentials:
        if mailbox.auth == "none":
            if not self._sandbox:
                raise CredentialsRevoked(
                    "mailbox is registered with auth=none, which only the local Gmail"
                    " sandbox accepts"
                )
            return SandboxToken(f"sandbox:{mailbox.address}")
        if mailbox.auth == "delegated":
            return self._delegated(mailbox.address)
        if mailbox.auth == "oauth":
            return self._oauth(mailbox)
        raise CredentialsRevoked(f"unknown auth mode {mailbox.auth!r} on the mailbox")

    def _source_credentials(self) -> tuple[BaseCredentials, str | None]:
        if self._source is None:
            try:
                credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
            except auth_exceptions.GoogleAuthError as exc:
                raise GmailUnavailable(
                    f"could not load the runtime identity: {exc}"
                ) from exc
            self._source = (
                credentials,
                getattr(credentials, "service_account_email", None),
            )
        return self._source

    def _delegated(self, address: str) -> BaseCredentials:
        source, own_email = self._source_credentials()
        account = self._delegation_account or own_email
        if not account or account == "default":
            # Compute credentials learn their e-mail only on the first refresh.
            try:
                source.refresh(Request())  # type: ignore[no-untyped-call]
            except auth_exceptions.GoogleAuthError as exc:
                raise GmailUnavailable(
                    f"could not load the runtime identity: {exc}"
                ) from exc
            account = getattr(source, "service_account_email", None)
        if not account:
            raise ConfigError(
                "INBOXSYNC_DELEGATED_ADMIN must name the service account authorised for"
                " domain-wide delegation"
            )
        return DelegatedCredentials(
            source,
            account=account,
            subject=address,
            scopes=self._scopes,
            token_uri=self._token_uri,
            sign_jwt_url=(
                f"{self._iam_credentials}projects/-/serviceAccounts/{account}:signJwt"
            ),
        )

    def _oauth(self, mailbox: Mailbox) -> BaseCredentials:
        if not mailbox.oauth_secret:
            raise CredentialsRevoked("auth=oauth mailbox has no oauthSecret")
        source, _ = self._source_credentials()
        name = mailbox.oauth_secret
        if "/versions/" not in name:
            name += "/versions/latest"
        session = AuthorizedSession(source)  # type: ignore[no-untyped-call]
        try:
            response = session.get(
                f"{self._secret_manager}{name}:access", timeout=self._timeout_s
            )
        except Exception as exc:  # requests' or google-auth's: a network problem
            raise GmailUnavailable(
                f"Secret Manager unreachable: {type(exc).__name__}"
            ) from exc
        finally:
            session.close()  # type: ignore[no-untyped-call]
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise GmailUnavailable(
                f"Secret Manager answered {response.status_code} for {name}"
            )
        if response.status_code == 404:
            raise CredentialsRevoked(
                f"the mailbox's OAuth secret {name} does not exist (HTTP 404)"
            )
        if response.status_code == 403:
            raise CredentialsRevoked(
                f"the runtime service account may not read the OAuth secret {name}"
                " (HTTP 403): grant it roles/secretmanager.secretAccessor"
            )
        if response.status_code != 200:
            raise CredentialsRevoked(
                f"cannot read the mailbox's OAuth secret {name}:"
                f" HTTP {response.status_code}"
            )
        try:
            encoded = response.json()["payload"]["data"]
            info = json.loads(base64.b64decode(encoded))
            return user_credentials.Credentials(  # type: ignore[no-untyped-call]
                None,
                refresh_token=info["refresh_token"],
                client_id=info["client_id"],
                client_secret=info["client_secret"],
                # Never the secret's own token_uri: whoever can write a secret
                # must not choose where the client secret is sent.
                token_uri=self._token_uri,
                scopes=self._scopes,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CredentialsRevoked(
                f"the OAuth secret {name} must be JSON with client_id, client_secret"
                f" and refresh_token ({type(exc).__name__})"
            ) from None


class SandboxToken(BaseCredentials):
    """The sandbox's fixed `sandbox:<address>` token; nothing can renew it."""

    def __init__(self, token: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.token = token

    def refresh(self, request: transport.Request) -> None:
        # Reached only when the sandbox answered 401 to this token.
        raise CredentialsRevoked("the Gmail sandbox rejected the mailbox's token")


def _cache_key(mailbox: Mailbox) -> tuple[str, str, str | None]:
    return (mailbox.mailbox_id, mailbox.auth, mailbox.oauth_secret)


class DelegatedCredentials(BaseCredentials):
    """Domain-wide delegation without a key: IAM signJwt, then the JWT-bearer grant.

    The JWT names the delegation service account (`iss`), the mailbox (`sub`),
    the Gmail scopes and the token endpoint (`aud`); IAM signs it with a
    Google-managed key of that account, which the runtime identity may do when
    it holds roles/iam.serviceAccountTokenCreator on it.
    """

    def __init__(
        self,
        source: BaseCredentials,
        *,
        account: str,
        subject: str,
        scopes: Sequence[str],
        token_uri: str,
        sign_jwt_url: str,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._source = source
        self._account = account
        self._subject = subject
        self._scopes = list(scopes)
        self._token_uri = token_uri
        self._sign_jwt_url = sign_jwt_url

    def refresh(self, request: transport.Request) -> None:
        assertion = self._signed_assertion(request)
        token, expiry, _ = oauth2_client.jwt_grant(  # type: ignore[no-untyped-call]
            request, self._token_uri, assertion
        )
        self.token = token
        self.expiry = expiry

    def _signed_assertion(self, request: transport.Request) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": self._account,
            "sub": self._subject,
            "scope": " ".join(self._scopes),
            "aud": self._token_uri,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=_DELEGATION_LIFETIME_S)).timestamp()),
        }
        headers = {"Content-Type": "application/json"}
        self._source.before_request(request, "POST", self._sign_jwt_url, headers)  # type: ignore[no-untyped-call]
        body = json.dumps({"payload": json.dumps(claims)}).encode()
        response = request(
            url=self._sign_jwt_url, method="POST", headers=headers, body=body
        )
        text = response.data.decode("utf-8", "replace")
        if response.status == 200:
            try:
                return str(json.loads(text)["signedJwt"])
            except (KeyError, ValueError, TypeError):
                raise GmailUnavailable("IAM signJwt answered without a JWT") from None
        if response.status in (403, 404):
            raise CredentialsRevoked(
                f"IAM signJwt for {self._account} answered {response.status}: the"
                " runtime service account needs roles/iam.serviceAccountTokenCreator"
                " on it, and the IAM Service Account Credentials API must be enabled"
                f" ({_error_message(text)})"
            )
        if response.status >= 500 or response.status in (408, 429):
            raise GmailUnavailable(f"IAM signJwt answered {response.status}")
        raise CredentialsRevoked(
            f"IAM signJwt for {self._account} answered {response.status}"
            f" ({_error_message(text)})"
        )


def _error_message(text: str) -> str:
    """The `error.message` of a Google JSON error answer, else its start."""
    try:
        return str(json.loads(text)["error"]["message"])
    except (KeyError, ValueError, TypeError):
        return text[:200]


class GmailApiMailbox:
    """MailboxGmail over one googleapiclient service (userId `me`), built lazily."""

    def __init__(
        self,
        make_service: Callable[[], Any],
        *,
        batch_uri: str,
        on_revoked: Callable[[], None] | None = None,
    ) -> None:
        self._make_service = make_service
        self._service_built: Any = None
        self._batch_uri = batch_uri
        self._on_revoked = on_revoked

    @property
    def _service(self) -> Any:
        if self._service_built is None:
            try:
                self._service_built = self._make_service()
            except Exception as exc:
                raise self._failed("credentials", exc) from exc
        return self._service_built

    def _failed(self, method: str, exc: BaseException) -> InboxsyncError:
        error = translate_error(method, exc)
        if isinstance(error, CredentialsRevoked) and self._on_revoked is not None:
            # A new refresh token or a granted role must be picked up next time.
            self._on_revoked()
        return error

    def _execute(self, method: str, request: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = request.execute(num_retries=0)
        except Exception as exc:
            raise self._failed(method, exc) from exc
        return result

    def get_profile_history_id(self) -> int:
        profile = self._execute(
            "getProfile", self._service.users().getProfile(userId="me")
        )
        return int(profile["historyId"])

    def list_history(
        self, start_history_id: int, page_token: str | None
    ) -> HistoryPage:
        request = (
            self._service.users()
            .history()
            .list(
                userId="me",
                startHistoryId=str(start_history_id),
                historyTypes=_HISTORY_TYPES,
                maxResults=_HISTORY_PAGE_SIZE,
                pageToken=page_token,
            )
        )
        response = self._execute("history.list", request)
        changes: list[HistoryChange] = []
        last_id: int | None = None
        for record in response.get("history", []):
            last_id = int(record["id"])
            for added in record.get("messagesAdded", []):
                changes.append(HistoryChange(added["message"]["id"], "added"))
            for labelled in record.get("labelsAdded", []):
                changes.append(
                    HistoryChange(
                        labelled["message"]["id"],
                        "labels",
                        frozenset(labelled.get("labelIds", [])),
                    )
                )
        return HistoryPage(
            changes=tuple(changes),
            last_record_id=last_id,
            response_history_id=int(response["historyId"]),
            next_page_token=response.get("nextPageToken") or None,
        )

    def list_messages(
        self, query: str, page_token: str | None, page_size: int
    ) -> MessagePage:
        request = (
            self._service.users()
            .messages()
            .list(userId="me", q=query, maxResults=page_size, pageToken=page_token)
        )
        response = self._execute("messages.list", request)
        ids = tuple(item["id"] for item in response.get("messages", []))
        return MessagePage(ids, response.get("nextPageToken") or None)

    def get_messages(
        self, message_ids: Sequence[str], fmt: MessageFormat
    ) -> Mapping[str, GmailMessage | None]:
        if len(message_ids) > 50:
            raise ValueError("at most 50 messages per batch")
        answers: dict[str, tuple[Any, Exception | None]] = {}

        def collect(
            request_id: str, response: Any, exception: Exception | None
        ) -> None:
            answers[request_id] = (response, exception)

        batch = BatchHttpRequest(callback=collect, batch_uri=self._batch_uri)
        for message_id in message_ids:
            extra = (
                {"metadataHeaders": METADATA_HEADERS}
                if fmt is MessageFormat.METADATA
                else {}
            )
            batch.add(
                self._service.users()
                .messages()
                .get(userId="me", id=message_id, format=fmt.api_name, **extra),
                request_id=message_id,
            )
        try:
            batch.execute()
        except Exception as exc:
            raise self._failed("batch", exc) from exc

        fetched: dict[str, GmailMessage | None] = {}
        for message_id in message_ids:
            response, exception = answers.get(message_id, (None, None))
            if exception is not None:
                error = translate_error("messages.get", exception)
                if isinstance(error, MessageGone):
                    fetched[message_id] = None
                    continue
                raise error from exception
            if response is None:
                raise GmailUnavailable("batch answer lacks a part")
            fetched[message_id] = parse_message(response)
        return fetched

    def add_labels(self, message_id: str, label_ids: Sequence[str]) -> None:
        request = (
            self._service.users()
            .messages()
            .modify(userId="me", id=message_id, body={"addLabelIds": list(label_ids)})
        )
        self._execute("messages.modify", request)

    def watch(self, topic: str, label_ids: Sequence[str]) -> tuple[int, int]:
        """Start or renew users.watch; the history id and expiry (epoch ms)."""
        body = {
            "topicName": topic,
            "labelIds": list(label_ids),
            "labelFilterBehavior": "include",
        }
        answer = self._execute(
            "watch", self._service.users().watch(userId="me", body=body)
        )
        return int(answer["historyId"]), int(answer["expiration"])


def parse_message(data: Mapping[str, Any]) -> GmailMessage:
    payload = data.get("payload") or {}
    headers = {
        str(h.get("name", "")).lower(): str(h.get("value", ""))
        for h in payload.get("headers", [])
    }
    return GmailMessage(
        message_id=str(data["id"]),
        thread_id=str(data.get("threadId", "")),
        label_ids=frozenset(data.get("labelIds", [])),
        headers=headers,
        has_attachment=_has_attachment(payload),
        snippet=str(data.get("snippet", "")),
        internal_date_ms=int(data.get("internalDate") or 0),
        size_estimate=int(data.get("sizeEstimate") or 0),
    )


def _has_attachment(part: Mapping[str, Any]) -> bool:
    body = part.get("body") or {}
    if part.get("filename") or body.get("attachmentId"):
        return True
    return any(_has_attachment(child) for child in part.get("parts", []))


def translate_error(method: str, exc: BaseException) -> InboxsyncError:
    """Map a googleapiclient / google-auth / socket failure onto the error tree."""
    if isinstance(exc, InboxsyncError):
        return exc
    if isinstance(exc, HttpError):
        status = int(exc.resp.status)
        reasons = _reasons(exc)
        detail = f"Gmail {method} answered {status} {','.join(sorted(reasons))}".strip()
        if status == 404 and method == "history.list":
            return HistoryExpired(detail)
        if status == 404 and method == "messages.get":
            return MessageGone(detail)
        if status == 429 or (status == 403 and reasons & _RATE_REASONS):
            return GmailRateLimited(detail, retry_after_s=_retry_after(exc))
        if status == 401:
            return CredentialsRevoked(detail)
        if status >= 500 or status == 408:
            return GmailUnavailable(detail, retry_after_s=_retry_after(exc))
        return GmailRequestRejected(detail)
    if isinstance(exc, auth_exceptions.RefreshError):
        if _oauth_error(exc) in _OAUTH_PERMANENT_ERRORS or str(exc).startswith(
            "Reauthentication is needed"
        ):
            return CredentialsRevoked(f"token refresh failed for {method}: {exc}")
        # A 5xx, an HTML error page from a proxy, an answer without a token:
        # the token endpoint may answer properly next time.
        return GmailUnavailable(
            f"token refresh failed for {method}, will retry: {str(exc)[:200]}"
        )
    if isinstance(
        exc,
        auth_exceptions.TransportError
        | httplib2.HttpLib2Error
        | socket.timeout
        | OSError,
    ):
        return GmailUnavailable(f"Gmail {method} failed: {type(exc).__name__}")
    return GmailUnavailable(f"Gmail {method} failed unexpectedly: {type(exc).__name__}")


def _oauth_error(exc: auth_exceptions.RefreshError) -> str | None:
    """The `error` code of the token endpoint's JSON answer, if it sent one."""
    for arg in exc.args:
        if isinstance(arg, Mapping) and isinstance(arg.get("error"), str):
            return str(arg["error"])
    return None


def _reasons(exc: HttpError) -> set[str]:
    found: set[str] = set()
    try:
        error = json.loads(exc.content).get("error", {})
    except (ValueError, AttributeError, TypeError):
        return found
    for item in error.get("errors", []) or []:
        if isinstance(item, dict) and item.get("reason"):
            found.add(str(item["reason"]))
    for item in error.get("details", []) or []:
        if isinstance(item, dict) and item.get("reason"):
            found.add(str(item["reason"]))
    if error.get("status") == "RESOURCE_EXHAUSTED":
        found.add("rateLimitExceeded")
    return found


def _retry_after(exc: HttpError) -> float | None:
    value = exc.resp.get("retry-after") if hasattr(exc.resp, "get") else None
    if not value:
        return None
    if str(value).isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(1.0, (when - datetime.now(UTC)).total_seconds())
