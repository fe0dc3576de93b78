"""Fixtures for the Gmail sandbox: a real server on 127.0.0.1, driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gmail_sandbox_helpers import ALICE, gmail_service

from inboxsync.local.sandbox import (
    FakeClock,
    RecordingPublisher,
    SandboxAdmin,
    SandboxServer,
    SandboxState,
)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(start_s=1_750_000_000.0)


@pytest.fixture
def recording_publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def sandbox_state(fake_clock: FakeClock) -> SandboxState:
    return SandboxState(clock=fake_clock, seed=7)


@pytest.fixture
def sandbox(
    sandbox_state: SandboxState, recording_publisher: RecordingPublisher
) -> Iterator[SandboxServer]:
    server = SandboxServer(sandbox_state, publisher=recording_publisher).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox_admin(sandbox: SandboxServer) -> Iterator[SandboxAdmin]:
    admin = SandboxAdmin(sandbox.url)
    yield admin
    admin.close()


@pytest.fixture
def alice(sandbox_admin: SandboxAdmin) -> str:
    sandbox_admin.create_mailbox(ALICE)
    return ALICE


@pytest.fixture
def gmail(sandbox: SandboxServer, alice: str) -> Iterator[Any]:
    """Gmail service for Alice's mailbox (`userId="me"` works)."""
    service = gmail_service(sandbox, alice)
    yield service
    service.close()
