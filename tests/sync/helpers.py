"""Builders shared by the sync tests."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping

from inboxsync import ids
from inboxsync.sync.actions import Action
from inboxsync.sync.engine import EngineConfig, SyncEngine
from inboxsync.sync.models import Mailbox, SyncTask
from inboxsync.sync.rules import parse_rules

from .fakes import FakeClock, FakeConnector, FakeGmail, MemoryStore

ADDRESS = "owner@example.com"
MAILBOX = ids.mailbox_id(ADDRESS)

SINK_RULES = """
[actions.sink]
type = "sink"

[[rules]]
name = "everything"
actions = ["sink"]
"""


def make_engine(
    gmail: FakeGmail,
    store: MemoryStore,
    actions: Mapping[str, Action],
    rules_toml: str = SINK_RULES,
    *,
    clock: FakeClock | None = None,
    config: EngineConfig | None = None,
) -> SyncEngine:
    return SyncEngine(
        mailboxes=store,
        messages=store,
        action_ledger=store,
        dead_letters=store,
        gmail=FakeConnector(gmail),
        rules=parse_rules(tomllib.loads(rules_toml)),
        actions=actions,
        config=config,
        clock=clock or FakeClock(),
    )


def add_mailbox(store: MemoryStore, checkpoint: int | None = 1000) -> Mailbox:
    mailbox = Mailbox(mailbox_id=MAILBOX, address=ADDRESS, checkpoint=checkpoint)
    store.add_mailbox(mailbox)
    return mailbox


def task(history_id: int | None, name: str = "t1", retry_count: int = 0) -> SyncTask:
    return SyncTask(
        mailbox_id=MAILBOX,
        history_id=history_id,
        task_name=name,
        retry_count=retry_count,
    )


def key(message_id: str, action: str = "sink") -> str:
    return ids.action_id(MAILBOX, message_id, action)
