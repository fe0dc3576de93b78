"""Sandbox answers checked against the schemas of Gmail's discovery document.

The document is the one shipped inside google-api-python-client, so the
sandbox is held to the same contract the production client is built from.
"""

from __future__ import annotations

import base64
import binascii
import json
from importlib import resources
from typing import Any

import pytest
from gmail_sandbox_helpers import ALICE, TOPIC

from inboxsync.local.sandbox import SandboxAdmin

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}


def _discovery() -> dict[str, Any]:
    path = (
        resources.files("googleapiclient") / "discovery_cache/documents/gmail.v1.json"
    )
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


class SchemaValidator:
    """Checks values against the discovery-document subset of JSON schema.

    Covers type, properties (unknown keys are errors), items,
    additionalProperties, $ref, enum, and formats int64/uint64 (digit strings),
    int32/uint32 (ranges) and byte (base64).
    """

    def __init__(self, schemas: dict[str, Any]) -> None:
        self._schemas = schemas

    def errors(self, value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
        if "$ref" in schema:
            return self.errors(value, self._schemas[schema["$ref"]], path)

        kind = schema.get("type")
        if kind == "object":
            return self._object_errors(value, schema, path)
        if kind == "array":
            if not isinstance(value, list):
                return [f"{path}: expected an array, got {type(value).__name__}"]
            return [
                error
                for index, item in enumerate(value)
                for error in self.errors(item, schema["items"], f"{path}[{index}]")
            ]
        if kind == "string":
            return self._string_errors(value, schema, path)
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return [f"{path}: expected an integer, got {value!r}"]
            low, high = _INT_RANGES.get(schema.get("format", ""), (None, None))
            if low is not None and high is not None and not low <= value <= high:
                return [f"{path}: {value} out of range for {schema['format']}"]
            return []
        if kind == "boolean":
            return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
        if kind == "number":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return [] if ok else [f"{path}: expected a number"]
        if kind == "any" or kind is None:
            return []
        return [f"{path}: schema type {kind!r} not understood by the validator"]

    def _object_errors(
        self, value: Any, schema: dict[str, Any], path: str
    ) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        found: list[str] = []
        for key, item in value.items():
            if key in properties:
                found += self.errors(item, properties[key], f"{path}.{key}")
            elif extra is not None:
                found += self.errors(item, extra, f"{path}.{key}")
            else:
                found.append(f"{path}: unknown property {key!r}")
        return found

    def _string_errors(
        self, value: Any, schema: dict[str, Any], path: str
    ) -> list[str]:
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {value!r}"]
        fmt = schema.get("format")
        if fmt in ("int64", "uint64"):
            digits = value[1:] if fmt == "int64" and value.startswith("-") else value
            if not digits.isdigit():
                return [f"{path}: {value!r} is not a {fmt} string"]
        if fmt == "byte":
            try:
                base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            except binascii.Error:
                return [f"{path}: not base64"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{path}: {value!r} not one of {schema['enum']}"]
        return []


@pytest.fixture(scope="module")
def validator() -> SchemaValidator:
    return SchemaValidator(_discovery()["schemas"])


def _response_schema(resource: str, method: str) -> dict[str, Any]:
    node: dict[str, Any] = _discovery()["resources"]["users"]
    for name in resource.split(".") if resource else []:
        node = node["resources"][name]
    schema: dict[str, Any] = node["methods"][method]["response"]
    return schema


def test_validator_catches_wrong_shapes(validator: SchemaValidator) -> None:
    profile = {"$ref": "Profile"}

    assert validator.errors({"historyId": 5}, profile) == [
        "$.historyId: expected a string, got 5"
    ]
    assert validator.errors({"historyID": "5"}, profile) == [
        "$: unknown property 'historyID'"
    ]
    assert validator.errors({"messagesTotal": "3"}, profile) == [
        "$.messagesTotal: expected an integer, got '3'"
    ]
    assert validator.errors({"historyId": "12a"}, profile) == [
        "$.historyId: '12a' is not a uint64 string"
    ]
    assert validator.errors(
        {"history": [{"id": 1}]}, {"$ref": "ListHistoryResponse"}
    ) == ["$.history[0].id: expected a string, got 1"]


def test_real_responses_match_the_discovery_schemas(
    gmail: Any, sandbox_admin: SandboxAdmin, validator: SchemaValidator
) -> None:
    start = sandbox_admin.get_mailbox(ALICE)["history_id"]
    plain, with_file = sandbox_admin.deliver(
        ALICE,
        labels=["INBOX", "UNREAD", "Bills"],
        attachments=[
            {"filename": "bill.pdf", "content_type": "application/pdf", "size": 300}
        ],
        count=2,
    ).message_ids
    users = gmail.users()
    users.messages().modify(
        userId="me", id=plain, body={"removeLabelIds": ["UNREAD"]}
    ).execute()
    sandbox_admin.delete_message(ALICE, plain)
    full = users.messages().get(userId="me", id=with_file, format="full").execute()
    attachment_id = full["payload"]["parts"][1]["body"]["attachmentId"]

    samples: list[tuple[str, str, Any]] = [
        ("", "getProfile", users.getProfile(userId="me").execute()),
        ("", "watch", users.watch(userId="me", body={"topicName": TOPIC}).execute()),
        ("labels", "list", users.labels().list(userId="me").execute()),
        (
            "history",
            "list",
            users.history()
            .list(userId="me", startHistoryId=start, maxResults=2)
            .execute(),
        ),
        (
            "history",
            "list",
            users.history().list(userId="me", startHistoryId=start).execute(),
        ),
        (
            "messages",
            "list",
            users.messages().list(userId="me", maxResults=1).execute(),
        ),
        (
            "messages",
            "list",
            users.messages().list(userId="me", q="label:none").execute(),
        ),
        (
            "messages",
            "modify",
            users.messages().modify(userId="me", id=with_file, body={}).execute(),
        ),
        ("messages", "get", full),
        *[
            (
                "messages",
                "get",
                users.messages()
                .get(userId="me", id=with_file, format=fmt, metadataHeaders=["Subject"])
                .execute(),
            )
            for fmt in ("minimal", "metadata", "raw")
        ],
        (
            "messages.attachments",
            "get",
            users.messages()
            .attachments()
            .get(userId="me", messageId=with_file, id=attachment_id)
            .execute(),
        ),
    ]

    problems = {
        f"{resource}.{method}#{index}": validator.errors(
            response, _response_schema(resource, method)
        )
        for index, (resource, method, response) in enumerate(samples)
    }

    assert {name: errors for name, errors in problems.items() if errors} == {}
    kinds = {
        key for _, _, r in samples[3:5] for record in r["history"] for key in record
    }
    assert {"messagesAdded", "labelsRemoved", "messagesDeleted"} <= kinds
