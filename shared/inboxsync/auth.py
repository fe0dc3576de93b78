"""Verification of the Google-signed OIDC tokens on push and task requests.

Both Pub/Sub push and Cloud Tasks attach `Authorization: Bearer <JWT>`. We check
the signature against Google's published certificates, the issuer, the
audience (always: google-auth skips it when none is passed), the expiry, and
that the `email` claim is a verified, allowed service account.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import requests
from google.auth import exceptions as google_auth_exceptions
from google.auth import jwt

from inboxsync.config import OidcSettings
from inboxsync.errors import AuthError, ForbiddenError, TransientError

__all__ = ["CertificateCache", "OidcVerifier", "TokenVerifier"]

_MAX_AGE = re.compile(r"max-age=(\d+)")
_DEFAULT_CERT_TTL_S = 3600.0
# Refetch on an unknown key id at most this often, so a flood of forged tokens
# cannot turn into a flood of certificate downloads.
_MIN_REFRESH_INTERVAL_S = 30.0
_CLOCK_SKEW_S = 10


class TokenVerifier(Protocol):
    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        """Return the token's claims, or raise AuthError / ForbiddenError."""
        ...


class CertificateCache:
    """Google's signing certificates, refreshed when their max-age runs out."""

    def __init__(
        self,
        url: str,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._session = session or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._certs: dict[str, str] = {}
        self._expires_at = 0.0
        self._fetched_at = -_MIN_REFRESH_INTERVAL_S

    def get(self, key_id: str | None) -> dict[str, str]:
        with self._lock:
            now = self._clock()
            stale = now >= self._expires_at
            unknown = key_id is not None and key_id not in self._certs
            may_refresh = now - self._fetched_at >= _MIN_REFRESH_INTERVAL_S
            if stale or (unknown and may_refresh):
                self._refresh(now)
            return dict(self._certs)

    def _refresh(self, now: float) -> None:
        try:
            response = self._session.get(self._url, timeout=5)
            response.raise_for_status()
            certs = response.json()
        except (requests.RequestException, ValueError) as exc:
            if self._certs:
                return  # keep serving the certificates we have
            raise TransientError(
                f"could not fetch OIDC certificates from {self._url}: {exc}"
            ) from exc
        if not isinstance(certs, dict):
            raise TransientError(
                f"OIDC certificates at {self._url} are not a JSON object"
            )
        match = _MAX_AGE.search(response.headers.get("Cache-Control", ""))
        ttl = float(match.group(1)) if match else _DEFAULT_CERT_TTL_S
        self._certs = {str(k): str(v) for k, v in certs.items()}
        self._expires_at = now + ttl
        self._fetched_at = now


class OidcVerifier:
    """Checks bearer tokens against one OidcSettings."""

    def __init__(self, settings: OidcSettings, certs: CertificateCache | None = None):
        self._settings = settings
        self._certs = certs or CertificateCache(settings.certs_url)

    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        token = _bearer_token(authorization)
        try:
            header = jwt.decode_header(token)  # type: ignore[no-untyped-call]
        except (ValueError, google_auth_exceptions.GoogleAuthError) as exc:
            raise AuthError(f"malformed bearer token: {exc}") from None
        certs = self._certs.get(header.get("kid"))
        try:
            claims: Mapping[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
                token,
                certs=certs,
                audience=self._settings.audience,
                clock_skew_in_seconds=_CLOCK_SKEW_S,
            )
        except (ValueError, google_auth_exceptions.GoogleAuthError) as exc:
            raise AuthError(f"token rejected: {exc}") from None

        if claims.get("iss") not in self._settings.issuers:
            raise AuthError(f"token issuer {claims.get('iss')!r} is not Google")
        email = str(claims.get("email", "")).lower()
        if email not in self._settings.allowed_emails:
            raise ForbiddenError(f"caller {email or '(no email claim)'} is not allowed")
        if claims.get("email_verified") is not True:
            raise ForbiddenError(f"caller {email} has no verified email")
        return claims


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization header is not a bearer token")
    return token.strip()
