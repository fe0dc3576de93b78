"""Shared fixtures: real emulators on loopback, started once per test session.

Each test gets its own Firestore project id, so tests never see each other's
documents and need no clean-up between them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from inboxsync.local import emulators

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def emulator_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-logs")


@pytest.fixture(scope="session")
def firestore_host(emulator_log_dir: Path) -> Iterator[str]:
    """Address of a Firestore emulator; also exported as FIRESTORE_EMULATOR_HOST."""
    proc = emulators.start_firestore(log_dir=emulator_log_dir)
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = proc.address
    yield proc.address
    if previous is None:
        os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
    else:
        os.environ["FIRESTORE_EMULATOR_HOST"] = previous
    proc.stop()


@pytest.fixture(scope="session")
def pubsub_host(emulator_log_dir: Path) -> Iterator[str]:
    """Address of a Pub/Sub emulator (REST and gRPC on one port)."""
    proc = emulators.start_pubsub(log_dir=emulator_log_dir)
    yield proc.address
    proc.stop()


@pytest.fixture(scope="session")
def tasks_host(emulator_log_dir: Path) -> Iterator[str]:
    """Address of the Cloud Tasks emulator (gRPC); create queues per test."""
    proc = emulators.start_tasks(log_dir=emulator_log_dir)
    yield proc.address
    proc.stop()


@pytest.fixture
def project_id() -> str:
    """A project id of this test's own: isolates its Firestore documents."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def firestore_client(firestore_host: str, project_id: str):  # type: ignore[no-untyped-def]
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    client = firestore.Client(project=project_id, credentials=AnonymousCredentials())
    yield client
    client.close()


class OidcIssuer:
    """Signs Google-style ID tokens with a local key and serves its certificate."""

    def __init__(self, certs_url: str, signer: object, key_id: str) -> None:
        self.certs_url = certs_url
        self._signer = signer
        self.key_id = key_id

    def token(self, **overrides: object) -> str:
        import time

        from google.auth import jwt

        now = int(time.time())
        claims: dict[str, object] = {
            "iss": "https://accounts.google.com",
            "aud": "https://push.example.test/receive_push",
            "email": "push-invoker@proj.iam.gserviceaccount.com",
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
            "sub": "1234567890",
        }
        claims.update(overrides)
        for key in [k for k, v in claims.items() if v is None]:
            del claims[key]
        return jwt.encode(self._signer, claims).decode()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[OidcIssuer]:
    """A local stand-in for Google's certificate endpoint, on 127.0.0.1."""
    import datetime
    import http.server
    import json
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from google.auth import crypt

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inboxsync-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_id = "test-key-1"
    certs = json.dumps(
        {key_id: cert.public_bytes(serialization.Encoding.PEM).decode()}
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.end_headers()
            self.wfile.write(certs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signer = crypt.RSASigner.from_string(pem, key_id=key_id)
    yield OidcIssuer(f"http://127.0.0.1:{server.server_port}/certs", signer, key_id)
    server.shutdown()
    server.server_close()


class PausedQueue:
    """A Cloud Tasks emulator queue of the test's own, paused so that created
    tasks stay listed instead of being dispatched."""

    location = "us-central1"

    def __init__(self, tasks_host: str, project: str) -> None:
        from google.cloud import tasks_v2

        from inboxsync.adapters.cloud_tasks import make_tasks_client

        self.name = f"q{uuid.uuid4().hex[:8]}"
        self.path = f"projects/{project}/locations/{self.location}/queues/{self.name}"
        self.client = make_tasks_client(tasks_host)
        self.client.create_queue(
            parent=f"projects/{project}/locations/{self.location}",
            queue=tasks_v2.Queue(name=self.path),
        )
        self.client.pause_queue(name=self.path)

    def tasks(self) -> list:  # type: ignore[type-arg]
        """Every task waiting in the queue, with its full HTTP request."""
        from google.cloud import tasks_v2

        request = {"parent": self.path, "response_view": tasks_v2.Task.View.FULL}
        return list(self.client.list_tasks(request=request))

    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks()]


@pytest.fixture
def paused_queue(tasks_host: str, project_id: str) -> PausedQueue:
    return PausedQueue(tasks_host, project_id)
