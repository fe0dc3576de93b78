"""Gmail credentials of `delegated` and `oauth` mailboxes, over real HTTP.

One local server stands in for Secret Manager, the OAuth token endpoint, IAM
Credentials and the metadata server. Its access tokens are `sandbox:<address>`,
the only bearer tokens the in-process Gmail sandbox accepts, so a Gmail call
that succeeds has carried the token the token endpoint issued.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from google.auth import compute_engine
from google.auth.compute_engine import _metadata
from google.oauth2 import credentials as user_credentials

from inboxsync import ids
from inboxsync.adapters.gmail import GmailApiConnector
from inboxsync.errors import CredentialsRevoked, GmailUnavailable, TransientError
from inboxsync.local.sandbox import (
    FakeClock,
    RecordingPublisher,
    SandboxAdmin,
    SandboxServer,
    SandboxState,
)
from inboxsync.sync.models import Mailbox

ADDRESS = "owner@example.com"
SECRET = "projects/demo/secrets/inboxsync-oauth-owner"
DELEGATION_ACCOUNT = "delegation@demo.iam.gserviceaccount.com"
RUNTIME_ACCOUNT = "runtime@demo.iam.gserviceaccount.com"
RUNTIME_TOKEN = "runtime-access-token"
SCOPES = ("https://www.googleapis.com/auth/gmail.modify",)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class GoogleStandIn:
    """What the stand-in serves, what it was asked, and the faults to answer."""

    url: str = ""
    secrets: dict[str, bytes] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    expires_in_s: int = 3600
    faults: dict[str, tuple[int, str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    signed: set[str] = field(default_factory=set)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def calls(self, kind: str) -> list[Seen]:
        return [s for s in self.seen if _kind(s.path) == kind]

    def answer(self, seen: Seen) -> tuple[int, str, str]:
        self.seen.append(seen)
        kind = _kind(seen.path)
        if kind in self.faults:
            status, body = self.faults[kind]
            return status, body, "application/json"
        if kind == "secret":
            return self._secret(seen)
        if kind == "signJwt":
            return self._sign_jwt(seen)
        if kind == "token":
            return self._token(seen)
        if kind == "metadata":
            return self._metadata(seen)
        return 404, '{"error": {"message": "no such stand-in route"}}', "text/plain"

    def _secret(self, seen: Seen) -> tuple[int, str, str]:
        name = seen.path.removeprefix("/v1/").removesuffix(":access")
        if name.removesuffix("/versions/latest") not in self.secrets:
            return 404, _google_error(404, f"Secret [{name}] not found"), "json"
        data = self.secrets[name.removesuffix("/versions/latest")]
        payload = {"data": base64.b64encode(data).decode()}
        return 200, json.dumps({"name": name, "payload": payload}), "json"

    def _sign_jwt(self, seen: Seen) -> tuple[int, str, str]:
        claims = json.loads(json.loads(seen.body)["payload"])
        header = {"alg": "RS256", "typ": "JWT", "kid": "stand-in"}
        signature = f"signed-by-{_account_of(seen.path)}"
        jwt = ".".join(_b64(json.dumps(part).encode()) for part in (header, claims))
        jwt += "." + _b64(signature.encode())
        self.signed.add(jwt)
        return 200, json.dumps({"keyId": "stand-in", "signedJwt": jwt}), "json"

    def _token(self, seen: Seen) -> tuple[int, str, str]:
        form = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
        if form.get("grant_type") == "refresh_token":
            address = self.refresh_tokens.get(form.get("refresh_token", ""))
        elif form.get("grant_type") == JWT_BEARER and form["assertion"] in self.signed:
            address = _claims(form["assertion"])["sub"]
        else:
            address = None
        if address is None:
            error = {"error": "invalid_grant", "error_description": "Bad Request"}
            return 400, json.dumps(error), "json"
        token = {
            "access_token": f"sandbox:{address}",
            "expires_in": self.expires_in_s,
            "token_type": "Bearer",
        }
        return 200, json.dumps(token), "json"

    def _metadata(self, seen: Seen) -> tuple[int, str, str]:
        if seen.path.startswith(
            "/computeMetadata/v1/instance/service-accounts/default/token"
        ):
            token = {"access_token": RUNTIME_TOKEN, "expires_in": 3600}
            return 200, json.dumps(token), "json"
        if seen.path.startswith("/computeMetadata/v1/instance/service-accounts/"):
            info = {"email": RUNTIME_ACCOUNT, "scopes": list(SCOPES)}
            return 200, json.dumps(info), "json"
        return 404, "not found", "text/plain"


def _kind(path: str) -> str:
    if path.startswith("/v1/projects/") and path.endswith(":access"):
        return "secret"
    if path.endswith(":signJwt"):
        return "signJwt"
    if path == "/token":
        return "token"
    if path.startswith("/computeMetadata/"):
        return "metadata"
    return "other"


def _account_of(path: str) -> str:
    return path.rsplit("/", 1)[1].removesuffix(":signJwt")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=="))
    return claims


def _google_error(status: int, message: str) -> str:
    return json.dumps({"error": {"code": status, "message": message}})


def _form(seen: Seen) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}


@pytest.fixture
def google() -> Iterator[GoogleStandIn]:
    stand_in = GoogleStandIn()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            seen = Seen(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            status, body, kind = stand_in.answer(seen)
            data = body.encode()
            self.send_response(status)
            self.send_header(
                "content-type", "application/json" if kind == "json" else kind
            )
            self.send_header("metadata-flavor", "Google")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield stand_in
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    state = SandboxState(clock=FakeClock(start_s=1_750_000_000.0), seed=5)
    server = SandboxServer(state, publisher=RecordingPublisher()).start()
    admin = SandboxAdmin(server.url)
    admin.create_mailbox(ADDRESS)
    admin.close()
    yield server
    server.stop()


def connector(
    google: GoogleStandIn,
    sandbox: SandboxServer,
    *,
    source: Any = None,
    delegation_account: str | None = DELEGATION_ACCOUNT,
) -> GmailApiConnector:
    runtime = source or user_credentials.Credentials(token=RUNTIME_TOKEN)  # type: ignore[no-untyped-call]
    return GmailApiConnector(
        api_url=sandbox.url,
        scopes=SCOPES,
        timeout_s=5.0,
        delegation_account=delegation_account,
        token_uri=google.token_uri,
        secret_manager_url=f"{google.url}/v1/",
        iam_credentials_url=f"{google.url}/v1/",
        source_credentials=runtime,
    )


def oauth_mailbox(secret: str = SECRET) -> Mailbox:
    return Mailbox(ids.mailbox_id(ADDRESS), ADDRESS, auth="oauth", oauth_secret=secret)


def delegated_mailbox() -> Mailbox:
    return Mailbox(ids.mailbox_id(ADDRESS), ADDRESS, auth="delegated")


def store_oauth_secret(google: GoogleStandIn) -> None:
    info = {
        "client_id": "client-1.apps.googleusercontent.com",
        "client_secret": "client-secret-1",
        "refresh_token": "refresh-1",
    }
    google.secrets[SECRET] = json.dumps(info).encode()
    google.refresh_tokens["refresh-1"] = ADDRESS


# --- oauth ------------------------------------------------------------------


def test_oauth_mailbox_reads_its_secret_refreshes_and_calls_gmail_with_the_token(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    store_oauth_secret(google)
    gmail = connector(google, sandbox).for_mailbox(oauth_mailbox())

    history_id = gmail.get_profile_history_id()

    assert history_id > 0
    [secret] = google.calls("secret")
    assert secret.method == "GET"
    assert secret.path == f"/v1/{SECRET}/versions/latest:access"
    assert secret.headers["authorization"] == f"Bearer {RUNTIME_TOKEN}"
    [token] = google.calls("token")
    assert _form(token) == {
        "grant_type": "refresh_token",
        "client_id": "client-1.apps.googleusercontent.com",
        "client_secret": "client-secret-1",
        "refresh_token": "refresh-1",
        "scope": " ".join(SCOPES),
    }


def test_a_token_uri_inside_the_secret_is_ignored(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    store_oauth_secret(google)
    info = json.loads(google.secrets[SECRET])
    info["token_uri"] = "http://127.0.0.1:9/collects-client-secrets"
    google.secrets[SECRET] = json.dumps(info).encode()
    gmail = connector(google, sandbox).for_mailbox(oauth_mailbox())

    assert gmail.get_profile_history_id() > 0
    assert len(google.calls("token")) == 1  # the configured endpoint, not the secret's


def test_for_mailbox_makes_no_call_before_the_first_gmail_request(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    store_oauth_secret(google)

    connector(google, sandbox).for_mailbox(oauth_mailbox())

    assert google.seen == []


def test_missing_oauth_secret_is_permanent_and_names_the_secret(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    gmail = connector(google, sandbox).for_mailbox(oauth_mailbox())

    with pytest.raises(CredentialsRevoked, match=SECRET):
        gmail.get_profile_history_id()

    assert google.calls("token") == []


def test_unreadable_oauth_secret_names_the_missing_role(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    google.faults["secret"] = (403, _google_error(403, "Permission denied"))
    gmail = connector(google, sandbox).for_mailbox(oauth_mailbox())

    with pytest.raises(
        CredentialsRevoked, match=re.escape("roles/secretmanager.secretAccessor")
    ):
        gmail.get_profile_history_id()


def test_malformed_oauth_secret_is_permanent(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    google.secrets[SECRET] = b'{"client_id": "only-this"}'
    gmail = connector(google, sandbox).for_mailbox(oauth_mailbox())

    with pytest.raises(CredentialsRevoked, match="refresh_token"):
        gmail.get_profile_history_id()


def test_secret_manager_outage_is_transient(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    google.faults["secret"] = (503, _google_error(503, "unavailable"))
    gmail = connector(google, sandbox).for_mailbox(oauth_mailbox())

    with pytest.raises(GmailUnavailable):
        gmail.get_profile_history_id()


def test_invalid_grant_revokes_and_the_next_sync_reads_the_secret_again(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    store_oauth_secret(google)
    google.refresh_tokens.clear()  # the user revoked the grant
    gmail_api = connector(google, sandbox)

    with pytest.raises(CredentialsRevoked, match="invalid_grant"):
        gmail_api.for_mailbox(oauth_mailbox()).get_profile_history_id()
    google.refresh_tokens["refresh-1"] = ADDRESS  # the operator stored a new one
    gmail_api.for_mailbox(oauth_mailbox()).get_profile_history_id()

    assert len(google.calls("secret")) == 2


@pytest.mark.parametrize(
    ("status", "body", "attempts"),
    [
        (502, "<html>Bad Gateway</html>", 1),
        # google-auth itself tries 500/503/504/408/429 three times, about 3 s.
        (503, json.dumps({"error": "temporarily_unavailable"}), 3),
    ],
)
def test_token_endpoint_failure_is_transient(
    google: GoogleStandIn,
    sandbox: SandboxServer,
    status: int,
    body: str,
    attempts: int,
) -> None:
    store_oauth_secret(google)
    google.faults["token"] = (status, body)
    gmail = connector(google, sandbox).for_mailbox(oauth_mailbox())

    with pytest.raises(TransientError):
        gmail.get_profile_history_id()

    assert len(google.calls("token")) == attempts


def test_oauth_token_is_cached_per_mailbox_until_near_expiry(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    store_oauth_secret(google)
    gmail_api = connector(google, sandbox)

    gmail_api.for_mailbox(oauth_mailbox()).get_profile_history_id()
    gmail_api.for_mailbox(oauth_mailbox()).get_profile_history_id()

    assert (len(google.calls("secret")), len(google.calls("token"))) == (1, 1)


def test_token_within_the_refresh_margin_is_fetched_again(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    # google-auth renews tokens with less than 3m45s left; a 60 s token always is.
    store_oauth_secret(google)
    google.expires_in_s = 60
    gmail_api = connector(google, sandbox)

    gmail_api.for_mailbox(oauth_mailbox()).get_profile_history_id()
    gmail_api.for_mailbox(oauth_mailbox()).get_profile_history_id()

    assert (len(google.calls("secret")), len(google.calls("token"))) == (1, 2)


# --- delegated --------------------------------------------------------------


def test_delegated_mailbox_signs_a_jwt_through_iam_and_exchanges_it(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    gmail = connector(google, sandbox).for_mailbox(delegated_mailbox())

    history_id = gmail.get_profile_history_id()

    assert history_id > 0
    [sign] = google.calls("signJwt")
    assert sign.method == "POST"
    assert sign.path == f"/v1/projects/-/serviceAccounts/{DELEGATION_ACCOUNT}:signJwt"
    assert sign.headers["authorization"] == f"Bearer {RUNTIME_TOKEN}"
    claims = json.loads(json.loads(sign.body)["payload"])
    assert claims["iss"] == DELEGATION_ACCOUNT
    assert claims["sub"] == ADDRESS
    assert claims["scope"] == " ".join(SCOPES)
    assert claims["aud"] == google.token_uri
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    [token] = google.calls("token")
    form = _form(token)
    assert form["grant_type"] == JWT_BEARER
    assert form["assertion"] in google.signed


def test_sign_jwt_forbidden_names_the_missing_role(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    google.faults["signJwt"] = (
        403,
        _google_error(403, "Permission 'iam.serviceAccounts.signJwt' denied"),
    )
    gmail = connector(google, sandbox).for_mailbox(delegated_mailbox())

    with pytest.raises(CredentialsRevoked) as raised:
        gmail.get_profile_history_id()

    assert "roles/iam.serviceAccountTokenCreator" in str(raised.value)
    assert DELEGATION_ACCOUNT in str(raised.value)
    assert google.calls("token") == []


def test_sign_jwt_outage_is_transient(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    google.faults["signJwt"] = (503, _google_error(503, "unavailable"))
    gmail = connector(google, sandbox).for_mailbox(delegated_mailbox())

    with pytest.raises(GmailUnavailable):
        gmail.get_profile_history_id()


def test_delegation_not_granted_in_workspace_is_permanent(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    error = {
        "error": "unauthorized_client",
        "error_description": "Client is unauthorized to retrieve access tokens",
    }
    google.faults["token"] = (401, json.dumps(error))
    gmail = connector(google, sandbox).for_mailbox(delegated_mailbox())

    with pytest.raises(CredentialsRevoked, match="unauthorized_client"):
        gmail.get_profile_history_id()


def test_delegated_token_is_cached_per_mailbox_until_near_expiry(
    google: GoogleStandIn, sandbox: SandboxServer
) -> None:
    gmail_api = connector(google, sandbox)

    gmail_api.for_mailbox(delegated_mailbox()).get_profile_history_id()
    gmail_api.for_mailbox(delegated_mailbox()).get_profile_history_id()

    assert (len(google.calls("signJwt")), len(google.calls("token"))) == (1, 1)


def test_delegation_account_defaults_to_the_runtime_identity_from_metadata(
    google: GoogleStandIn, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # google-auth reads GCE_METADATA_HOST once, at import: set what it read.
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", google.url.split("//")[1])
    runtime = compute_engine.Credentials()  # type: ignore[no-untyped-call]
    gmail_api = connector(google, sandbox, source=runtime, delegation_account=None)

    gmail_api.for_mailbox(delegated_mailbox()).get_profile_history_id()

    [sign] = google.calls("signJwt")
    assert sign.path == f"/v1/projects/-/serviceAccounts/{RUNTIME_ACCOUNT}:signJwt"
    assert sign.headers["authorization"] == f"Bearer {RUNTIME_TOKEN}"
    assert google.calls("metadata")
