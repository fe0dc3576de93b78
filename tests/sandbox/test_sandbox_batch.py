"""The batch endpoint, driven by googleapiclient's real BatchHttpRequest."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from gmail_sandbox_helpers import ALICE
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from inboxsync.local.sandbox import SandboxAdmin, SandboxServer


class _Collector:
    """Batch callback that keeps every (response, exception) by request id."""

    def __init__(self) -> None:
        self.results: dict[str, tuple[Any, HttpError | None]] = {}

    def __call__(
        self, request_id: str, response: Any, exception: HttpError | None
    ) -> None:
        self.results[request_id] = (response, exception)


def test_new_batch_http_request_ignores_api_endpoint(
    gmail: Any, sandbox: SandboxServer
) -> None:
    # The client builds its batch URI from the discovery document's rootUrl,
    # not from client_options.api_endpoint: callers must pass batch_uri.
    batch = gmail.new_batch_http_request()

    assert batch._batch_uri == "https://gmail.googleapis.com/batch"
    assert sandbox.batch_url == f"{sandbox.url}batch/gmail/v1"


def test_batch_of_60_gets(
    gmail: Any, sandbox: SandboxServer, sandbox_admin: SandboxAdmin
) -> None:
    message_ids = sandbox_admin.deliver(ALICE, count=60).message_ids
    collector = _Collector()
    batch = BatchHttpRequest(callback=collector, batch_uri=sandbox.batch_url)
    for message_id in message_ids:
        batch.add(
            gmail.users().messages().get(userId="me", id=message_id, format="metadata"),
            request_id=message_id,
        )

    batch.execute()

    assert set(collector.results) == set(message_ids)
    for message_id, (response, exception) in collector.results.items():
        assert exception is None
        assert response["id"] == message_id
    assert sandbox_admin.stats()["calls"]["messages.get"] == 60
    assert sandbox_admin.stats()["calls"]["batch"] == 1


def test_batch_mixes_methods_and_per_part_errors(
    gmail: Any, sandbox: SandboxServer, sandbox_admin: SandboxAdmin
) -> None:
    kept, deleted = sandbox_admin.deliver(ALICE, count=2).message_ids
    sandbox_admin.delete_message(ALICE, deleted)
    collector = _Collector()
    batch = BatchHttpRequest(callback=collector, batch_uri=sandbox.batch_url)
    batch.add(gmail.users().messages().get(userId="me", id=deleted), request_id="gone")
    batch.add(
        gmail.users()
        .messages()
        .modify(userId="me", id=kept, body={"removeLabelIds": ["UNREAD"]}),
        request_id="modify",
    )
    batch.add(gmail.users().getProfile(userId="me"), request_id="profile")
    batch.add(gmail.users().stop(userId="me"), request_id="stop")

    batch.execute()

    gone_response, gone_error = collector.results["gone"]
    assert gone_response is None
    assert gone_error is not None and gone_error.resp.status == 404
    assert collector.results["modify"][0]["labelIds"] == ["INBOX"]
    assert collector.results["profile"][0]["messagesTotal"] == 1
    assert collector.results["stop"][1] is None


def test_batch_over_100_parts_is_400(
    gmail: Any, sandbox: SandboxServer, sandbox_admin: SandboxAdmin
) -> None:
    message_id = sandbox_admin.deliver(ALICE).message_ids[0]
    batch = BatchHttpRequest(batch_uri=sandbox.batch_url)
    for _ in range(101):
        batch.add(gmail.users().messages().get(userId="me", id=message_id))

    with pytest.raises(HttpError) as caught:
        batch.execute()

    assert caught.value.resp.status == 400
    assert "messages.get" not in sandbox_admin.stats()["calls"]


def test_batch_of_exactly_100_parts_is_fine(
    gmail: Any, sandbox: SandboxServer, sandbox_admin: SandboxAdmin
) -> None:
    message_id = sandbox_admin.deliver(ALICE).message_ids[0]
    collector = _Collector()
    batch = BatchHttpRequest(callback=collector, batch_uri=sandbox.batch_url)
    for _ in range(100):
        batch.add(
            gmail.users().messages().get(userId="me", id=message_id, format="minimal")
        )

    batch.execute()

    assert len(collector.results) == 100
    assert all(error is None for _, error in collector.results.values())


def test_faults_apply_inside_batches(
    gmail: Any, sandbox: SandboxServer, sandbox_admin: SandboxAdmin
) -> None:
    message_ids = sandbox_admin.deliver(ALICE, count=4).message_ids
    sandbox_admin.inject_fault("messages.get", status=429, count=2)
    collector = _Collector()
    batch = BatchHttpRequest(callback=collector, batch_uri=sandbox.batch_url)
    for message_id in message_ids:
        batch.add(
            gmail.users().messages().get(userId="me", id=message_id),
            request_id=message_id,
        )

    batch.execute()

    statuses = [
        error.resp.status if error else 200
        for _, error in (collector.results[m] for m in message_ids)
    ]
    assert statuses == [429, 429, 200, 200]


def test_short_batch_path_is_served_too(
    gmail: Any, sandbox: SandboxServer, sandbox_admin: SandboxAdmin
) -> None:
    message_id = sandbox_admin.deliver(ALICE).message_ids[0]
    collector = _Collector()
    batch = BatchHttpRequest(callback=collector, batch_uri=f"{sandbox.url}batch")
    batch.add(
        gmail.users().messages().get(userId="me", id=message_id), request_id="one"
    )

    batch.execute()

    assert collector.results["one"][0]["id"] == message_id


def test_batch_envelope_credentials_cover_bare_parts(
    sandbox: SandboxServer, sandbox_admin: SandboxAdmin, alice: str
) -> None:
    body = (
        "--XYZ\r\n"
        "Content-Type: application/http\r\n"
        "Content-ID: <part-1>\r\n\r\n"
        "GET /gmail/v1/users/me/profile HTTP/1.1\r\n\r\n"
        "--XYZ--\r\n"
    )

    response = requests.post(
        sandbox.batch_url,
        data=body.encode(),
        headers={
            "Content-Type": "multipart/mixed; boundary=XYZ",
            "Authorization": f"Bearer sandbox:{alice}",
        },
        timeout=5,
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=")
    assert "Content-ID: <response-part-1>" in response.text
    assert f'"emailAddress": "{alice}"' in response.text


def test_batch_that_is_not_multipart_is_400(sandbox: SandboxServer) -> None:
    response = requests.post(sandbox.batch_url, json={"not": "a batch"}, timeout=5)

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
