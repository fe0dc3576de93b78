"""Strict parsing of a Pub/Sub push body carrying a Gmail notification."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from inboxsync.errors import InvalidPayload

__all__ = ["GmailNotification", "PushEnvelope", "parse_push_body"]

_MAX_ADDRESS_LEN = 320
# Gmail history ids are unsigned 64-bit numbers.
_MAX_HISTORY_ID = 2**64 - 1


@dataclass(frozen=True)
class GmailNotification:
    """What Gmail publishes: which mailbox changed, and up to which history id."""

    email_address: str
    history_id: int


@dataclass(frozen=True)
class PushEnvelope:
    """The wrapped push body Pub/Sub sends to an HTTP endpoint."""

    message_id: str
    subscription: str
    publish_time: str | None
    notification: GmailNotification
    attributes: dict[str, str] = field(default_factory=dict)
    delivery_attempt: int | None = None


def parse_push_body(body: bytes) -> PushEnvelope:
    """Parse and validate a push body; raise InvalidPayload naming what is wrong."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidPayload(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidPayload("body is not a JSON object")

    message = document.get("message")
    if not isinstance(message, dict):
        raise InvalidPayload("body has no 'message' object")
    message_id = _first_string(message, "messageId", "message_id")
    if message_id is None:
        raise InvalidPayload("message has no 'messageId'")
    subscription = document.get("subscription")
    if not isinstance(subscription, str) or not subscription:
        raise InvalidPayload("body has no 'subscription' string")

    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise InvalidPayload("message 'attributes' is not a map of strings")

    delivery_attempt = document.get("deliveryAttempt")
    if delivery_attempt is not None and (
        not isinstance(delivery_attempt, int) or isinstance(delivery_attempt, bool)
    ):
        raise InvalidPayload("'deliveryAttempt' is not a whole number")

    return PushEnvelope(
        message_id=message_id,
        subscription=subscription,
        publish_time=_first_string(message, "publishTime", "publish_time"),
        notification=_parse_notification(message.get("data")),
        attributes=dict(attributes),
        delivery_attempt=delivery_attempt,
    )


def _first_string(mapping: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _decode_data(data: object) -> bytes:
    if not isinstance(data, str) or not data:
        raise InvalidPayload("message has no 'data' string")
    # Pub/Sub documents standard base64; Gmail examples use the URL-safe
    # alphabet, often without padding. Accept both alphabets, padded or not.
    text = data.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPayload("message 'data' is not base64") from None


def _parse_notification(data: object) -> GmailNotification:
    raw = _decode_data(data)
    try:
        decoded = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidPayload(f"message 'data' is not JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise InvalidPayload("message 'data' is not a JSON object")

    address = decoded.get("emailAddress")
    if not isinstance(address, str) or not address.strip():
        raise InvalidPayload("notification has no 'emailAddress' string")
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or len(address) > _MAX_ADDRESS_LEN:
        raise InvalidPayload("notification 'emailAddress' is not an e-mail address")

    history_id = decoded.get("historyId")
    if isinstance(history_id, str) and history_id.isdigit():
        history_id = int(history_id)
    if not isinstance(history_id, int) or isinstance(history_id, bool):
        raise InvalidPayload("notification 'historyId' is not a whole number")
    if not 0 < history_id <= _MAX_HISTORY_ID:
        raise InvalidPayload("notification 'historyId' is out of range")

    return GmailNotification(email_address=address, history_id=history_id)
