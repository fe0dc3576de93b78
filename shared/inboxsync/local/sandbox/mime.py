"""RFC 822 messages for the sandbox: building them and rendering Gmail parts.

Every sandbox message is stored as its raw RFC 822 bytes; the Gmail
`payload` tree, the snippet and the search fields are all derived from them,
so a message delivered as raw bytes and one built from fields behave alike.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.utils import format_datetime
from typing import Any

__all__ = [
    "AttachmentSpec",
    "MessageSummary",
    "attachment_bytes",
    "attachment_id_for",
    "b64url_decode",
    "b64url_encode",
    "build_rfc822",
    "filler_bytes",
    "parse_attachment_id",
    "render_payload",
    "summarize",
]

_SNIPPET_CHARS = 120
_FILLER = b"inboxsync sandbox attachment\n"


@dataclass(frozen=True)
class AttachmentSpec:
    """One attachment to build into a message."""

    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class MessageSummary:
    """Fields of a raw message that search and rendering need again and again."""

    sender: str
    to: str
    subject: str
    snippet: str
    text: str
    has_attachment: bool


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url or standard base64, with or without padding."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not valid base64: {exc}") from exc


def filler_bytes(size: int) -> bytes:
    """Deterministic content of exactly `size` bytes for size-only attachments."""
    repeats = size // len(_FILLER) + 1
    return (_FILLER * repeats)[:size]


def build_rfc822(
    *,
    message_id: str,
    sender: str,
    to: str,
    subject: str,
    body: str,
    attachments: list[AttachmentSpec],
    date_ms: int,
) -> bytes:
    """Build a plain-text message, multipart/mixed when it has attachments."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.fromtimestamp(date_ms / 1000, tz=UTC))
    message["Message-ID"] = f"<{message_id}@sandbox.inboxsync.local>"
    message.set_content(body)

    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    if message.is_multipart():
        # A fixed boundary keeps the raw bytes the same from run to run.
        message.set_boundary(f"sandbox-boundary-{message_id}")

    return message.as_bytes()


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _leaf_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _walk_with_ids(part: Message, part_id: str) -> list[tuple[str, Message]]:
    found = [(part_id, part)]
    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        for index, child in enumerate(children):
            child_id = f"{part_id}.{index}" if part_id else str(index)
            found.extend(_walk_with_ids(child, child_id))
    return found


def summarize(raw: bytes) -> MessageSummary:
    """Extract the header and text fields used by search, snippets and listing."""
    parsed = _parse(raw)
    texts: list[str] = []
    has_attachment = False

    for _, part in _walk_with_ids(parsed, ""):
        if part.is_multipart():
            continue
        if part.get_filename():
            has_attachment = True
            continue
        if part.get_content_type() == "text/plain":
            charset = part.get_content_charset() or "utf-8"
            texts.append(_leaf_bytes(part).decode(charset, errors="replace"))

    text = "\n".join(texts)
    snippet = " ".join(text.split())[:_SNIPPET_CHARS]
    return MessageSummary(
        sender=str(parsed.get("From", "")),
        to=str(parsed.get("To", "")),
        subject=str(parsed.get("Subject", "")),
        snippet=snippet,
        text=text,
        has_attachment=has_attachment,
    )


def attachment_id_for(message_id: str, part_id: str) -> str:
    # Gmail attachment ids are opaque; ours encode where the part lives so that
    # attachments.get needs no extra table.
    token = f"{message_id}:{part_id}".encode()
    return "ATT" + base64.urlsafe_b64encode(token).decode("ascii").rstrip("=")


def parse_attachment_id(attachment_id: str) -> tuple[str, str] | None:
    if not attachment_id.startswith("ATT"):
        return None
    try:
        decoded = b64url_decode(attachment_id[3:]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    message_id, sep, part_id = decoded.partition(":")
    return (message_id, part_id) if sep else None


def attachment_bytes(raw: bytes, part_id: str) -> bytes | None:
    """Decoded content of the attachment part `part_id`, or None."""
    for found_id, part in _walk_with_ids(_parse(raw), ""):
        if found_id == part_id and not part.is_multipart() and part.get_filename():
            return _leaf_bytes(part)
    return None


def render_payload(
    raw: bytes,
    message_id: str,
    *,
    header_filter: list[str] | None = None,
    with_parts: bool = True,
) -> dict[str, Any]:
    """The Gmail `MessagePart` tree of a raw message.

    `header_filter` keeps only the named top-level headers (format=metadata);
    `with_parts=False` leaves out bodies and child parts.
    """
    parsed = _parse(raw)
    wanted = {name.lower() for name in header_filter} if header_filter else None
    return _render_part(parsed, "", message_id, wanted, with_parts)


def _render_part(
    part: Message,
    part_id: str,
    message_id: str,
    wanted: set[str] | None,
    with_parts: bool,
) -> dict[str, Any]:
    headers = [
        {"name": name, "value": str(value)}
        for name, value in part.items()
        if wanted is None or name.lower() in wanted
    ]
    rendered: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": headers,
    }
    if not with_parts:
        return rendered

    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        rendered["body"] = {"size": 0}
        rendered["parts"] = [
            _render_part(
                child,
                f"{part_id}.{index}" if part_id else str(index),
                message_id,
                None,
                True,
            )
            for index, child in enumerate(children)
        ]
        return rendered

    content = _leaf_bytes(part)
    if part.get_filename():
        rendered["body"] = {
            "attachmentId": attachment_id_for(message_id, part_id),
            "size": len(content),
        }
    else:
        rendered["body"] = {"size": len(content), "data": b64url_encode(content)}
    return rendered
