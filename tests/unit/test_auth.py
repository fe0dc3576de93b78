from __future__ import annotations

import time

import pytest

from inboxsync.auth import CertificateCache, OidcVerifier
from inboxsync.config import OidcSettings
from inboxsync.errors import AuthError, ForbiddenError, TransientError

AUDIENCE = "https://push.example.test/receive_push"
ALLOWED = "push-invoker@proj.iam.gserviceaccount.com"


@pytest.fixture
def verifier(oidc_issuer) -> OidcVerifier:  # type: ignore[no-untyped-def]
    settings = OidcSettings(
        enabled=True,
        audience=AUDIENCE,
        allowed_emails=(ALLOWED,),
        certs_url=oidc_issuer.certs_url,
    )
    return OidcVerifier(settings)


def test_valid_token_returns_claims(verifier, oidc_issuer) -> None:  # type: ignore[no-untyped-def]
    claims = verifier.verify(f"Bearer {oidc_issuer.token()}")

    assert claims["email"] == ALLOWED


@pytest.mark.parametrize(
    ("header", "error", "reason"),
    [
        (None, AuthError, "missing"),
        ("Basic abc", AuthError, "not a bearer"),
        ("Bearer ", AuthError, "not a bearer"),
        ("Bearer garbage", AuthError, "malformed"),
    ],
)
def test_missing_or_malformed_header(verifier, header, error, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=reason):
        verifier.verify(header)


@pytest.mark.parametrize(
    ("claims", "error", "reason"),
    [
        (
            {"exp": int(time.time()) - 600, "iat": int(time.time()) - 4000},
            AuthError,
            "xpired",
        ),
        ({"aud": "https://someone-else.test"}, AuthError, "audience"),
        ({"iss": "https://evil.example"}, AuthError, "issuer"),
        (
            {"email": "intruder@proj.iam.gserviceaccount.com"},
            ForbiddenError,
            "not allowed",
        ),
        ({"email": None}, ForbiddenError, "no email"),
        ({"email_verified": False}, ForbiddenError, "verified"),
    ],
)
def test_rejected_claims(verifier, oidc_issuer, claims, error, reason) -> None:  # type: ignore[no-untyped-def]
    token = oidc_issuer.token(**claims)

    with pytest.raises(error, match=reason) as raised:
        verifier.verify(f"Bearer {token}")

    # Wrong identity is 403 (ForbiddenError); everything else is plain 401.
    assert (type(raised.value) is ForbiddenError) == (error is ForbiddenError)


def test_signature_from_another_key_is_rejected(verifier, oidc_issuer) -> None:  # type: ignore[no-untyped-def]
    header, payload, _signature = oidc_issuer.token().split(".")
    forged = f"{header}.{payload}.{'A' * 342}"

    with pytest.raises(AuthError, match="rejected"):
        verifier.verify(f"Bearer {forged}")


def test_certificates_are_cached_between_tokens(oidc_issuer) -> None:  # type: ignore[no-untyped-def]
    calls = []

    class CountingSession:
        def get(self, url: str, timeout: float):  # type: ignore[no-untyped-def]
            import requests

            calls.append(url)
            return requests.get(url, timeout=timeout)

    cache = CertificateCache(oidc_issuer.certs_url, session=CountingSession())  # type: ignore[arg-type]

    for _ in range(5):
        cache.get(oidc_issuer.key_id)

    assert len(calls) == 1


def test_unreachable_certificate_endpoint_is_transient() -> None:
    cache = CertificateCache("http://127.0.0.1:9/certs")

    with pytest.raises(TransientError, match="could not fetch"):
        cache.get("any")
