from __future__ import annotations

import base64
import json

import pytest

from inboxsync.envelope import parse_push_body
from inboxsync.errors import InvalidPayload


def _body(data: object = None, **message_extra: object) -> bytes:
    if data is None:
        data = {"emailAddress": "user@example.com", "historyId": 9876}
    if not isinstance(data, str):
        data = base64.b64encode(json.dumps(data).encode()).decode()
    message = {"data": data, "messageId": "m-1", "publishTime": "2026-12-03T10:00:00Z"}
    message.update(message_extra)
    return json.dumps(
        {"message": message, "subscription": "projects/p/subscriptions/s"}
    ).encode()


def test_parses_standard_envelope() -> None:
    envelope = parse_push_body(_body())

    assert envelope.message_id == "m-1"
    assert envelope.subscription == "projects/p/subscriptions/s"
    assert envelope.notification.email_address == "user@example.com"
    assert envelope.notification.history_id == 9876
    assert envelope.delivery_attempt is None


def test_accepts_snake_case_message_id_and_string_history_id() -> None:
    data = base64.b64encode(b'{"emailAddress":"a@b.io","historyId":"42"}').decode()
    body = json.loads(_body(data))
    del body["message"]["messageId"]
    body["message"]["message_id"] = "snake-7"
    body["deliveryAttempt"] = 3

    envelope = parse_push_body(json.dumps(body).encode())

    assert envelope.message_id == "snake-7"
    assert envelope.notification.history_id == 42
    assert envelope.delivery_attempt == 3


@pytest.mark.parametrize("encoder", [base64.urlsafe_b64encode, base64.b64encode])
@pytest.mark.parametrize("strip_padding", [True, False])
def test_accepts_both_base64_alphabets_with_or_without_padding(
    encoder: object, strip_padding: bool
) -> None:
    # '>>>' and '???' produce '+' and '/' (or '-' and '_') in base64.
    raw = json.dumps(
        {"emailAddress": "x@y.org", "historyId": 5, "pad": ">>>???a"}
    ).encode()
    text = encoder(raw).decode()  # type: ignore[operator]
    if strip_padding:
        text = text.rstrip("=")

    envelope = parse_push_body(_body(text))

    assert envelope.notification.email_address == "x@y.org"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"subscription":"s"}', "no 'message'"),
        (
            json.dumps({"message": {"data": "e30="}, "subscription": "s"}).encode(),
            "messageId",
        ),
        (
            json.dumps({"message": {"messageId": "1", "data": "e30="}}).encode(),
            "subscription",
        ),
        (_body("%%%not-base64%%%"), "not base64"),
        (_body(base64.b64encode(b"not json").decode()), "'data' is not JSON"),
        (_body(base64.b64encode(b"[]").decode()), "not a JSON object"),
        (_body({"historyId": 1}), "emailAddress"),
        (_body({"emailAddress": "nobody", "historyId": 1}), "not an e-mail address"),
        (_body({"emailAddress": "a@b.io"}), "historyId"),
        (_body({"emailAddress": "a@b.io", "historyId": 1.5}), "historyId"),
        (_body({"emailAddress": "a@b.io", "historyId": True}), "historyId"),
        (_body({"emailAddress": "a@b.io", "historyId": -4}), "historyId"),
        (_body({"emailAddress": "a@b.io", "historyId": 0}), "out of range"),
        (_body({"emailAddress": "a@b.io", "historyId": 2**64}), "out of range"),
        (_body(None, attributes={"k": 1}), "attributes"),
        (
            json.dumps({"message": {"messageId": "1"}, "subscription": "s"}).encode(),
            "no 'data'",
        ),
    ],
)
def test_rejects_invalid_payloads_with_a_specific_reason(
    body: bytes, reason: str
) -> None:
    with pytest.raises(InvalidPayload, match=reason):
        parse_push_body(body)


def test_rejects_non_integer_delivery_attempt() -> None:
    body = json.loads(_body())
    body["deliveryAttempt"] = "3"

    with pytest.raises(InvalidPayload, match="deliveryAttempt"):
        parse_push_body(json.dumps(body).encode())
