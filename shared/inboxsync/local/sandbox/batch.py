"""The `multipart/mixed` batch format of Google APIs, both directions.

A batch body holds `application/http` parts, each an embedded HTTP request
with a `Content-ID`; the answer holds one embedded HTTP response per part,
whose `Content-ID` is the request's with `response-` put in front (that is
how googleapiclient's `BatchHttpRequest` pairs them up).
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

__all__ = [
    "BatchFormatError",
    "BatchPart",
    "PartResponse",
    "format_batch",
    "parse_batch",
]


class BatchFormatError(ValueError):
    """The batch body cannot be read."""


@dataclass(frozen=True)
class BatchPart:
    """One embedded request."""

    content_id: str | None
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class PartResponse:
    """One embedded response, matched to its request by `content_id`."""

    content_id: str | None
    status: int
    content_type: str | None
    body: bytes


def parse_batch(content_type: str, body: bytes) -> list[BatchPart]:
    """Split a batch request body into its embedded requests."""
    if not content_type.lower().startswith("multipart/mixed"):
        raise BatchFormatError("a batch request must be multipart/mixed")

    parser = email.parser.BytesParser(policy=email.policy.compat32)
    envelope = parser.parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not envelope.is_multipart():
        raise BatchFormatError("the batch body has no parts (is the boundary right?)")

    parts: list[BatchPart] = []
    payload = envelope.get_payload()
    assert isinstance(payload, list)
    for part in payload:
        if not isinstance(part, email.message.Message):
            raise BatchFormatError("each batch part must be one application/http")
        embedded = part.get_payload(decode=False)
        if not isinstance(embedded, str):
            raise BatchFormatError("each batch part must be one application/http")
        parts.append(_parse_embedded(part.get("Content-ID"), embedded))
    return parts


def _parse_embedded(content_id: str | None, text: str) -> BatchPart:
    normalized = text.replace("\r\n", "\n").lstrip("\n")
    head, _, body = normalized.partition("\n\n")
    lines = head.split("\n")

    request_line = lines[0].split(" ")
    if len(request_line) < 2:
        raise BatchFormatError(f"bad request line in batch part: {lines[0]!r}")
    method, target = request_line[0].upper(), request_line[1]
    split = urlsplit(target)
    target = split.path + (f"?{split.query}" if split.query else "")

    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()

    # Surrogate escapes keep any non-ASCII byte the parser met intact.
    raw_body = body.encode("utf-8", errors="surrogateescape").strip()
    return BatchPart(content_id, method, target, headers, raw_body)


def _response_content_id(content_id: str | None, index: int) -> str:
    if not content_id:
        return f"<response-{index + 1}>"
    inner = content_id.strip()
    if inner.startswith("<") and inner.endswith(">"):
        inner = inner[1:-1]
    return f"<response-{inner}>"


def format_batch(responses: list[PartResponse]) -> tuple[str, bytes]:
    """Render the answer to a batch; returns (content type, body)."""
    boundary = f"batch_{uuid.uuid4().hex}"
    chunks: list[bytes] = []

    for index, response in enumerate(responses):
        reason = HTTPStatus(response.status).phrase
        lines = [
            f"--{boundary}",
            "Content-Type: application/http",
            f"Content-ID: {_response_content_id(response.content_id, index)}",
            "",
            f"HTTP/1.1 {response.status} {reason}",
        ]
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
        # googleapiclient splits each embedded response on the first CRLF CRLF.
        chunks.append(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        chunks.append(response.body + b"\r\n")

    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/mixed; boundary={boundary}", b"".join(chunks)
