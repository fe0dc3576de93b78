"""Build the sync worker once per instance from the environment."""

from __future__ import annotations

from collections.abc import Mapping

from inboxsync.auth import OidcVerifier
from inboxsync.sync.actions import build_actions, default_context, is_known_action_type
from inboxsync.sync.engine import SyncEngine
from inboxsync.sync.rules import RuleSet, load_rules, parse_rules
from inboxsync.sync.settings import SyncSettings
from inboxsync.sync.worker import SyncWorker
from inboxsync.wiring import build_gmail_connector, start_instance

__all__ = ["build_sync_worker", "load_checked_rules"]


def load_checked_rules(path: str) -> RuleSet:
    """Load the rules file, also checking that every action type exists."""
    rules = load_rules(path)
    data = {
        "rules": [],
        "actions": {n: {"type": s.type} for n, s in rules.actions.items()},
    }
    parse_rules(data, source=rules.source, known_action_type=is_known_action_type)
    return rules


def build_sync_worker(environ: Mapping[str, str] | None = None) -> SyncWorker:
    # Adapters import the Google SDKs; keep that off module import time.
    from inboxsync.adapters.firestore import make_client
    from inboxsync.sync.firestore_store import SyncFirestore

    settings = SyncSettings.from_env(environ)
    start_instance(settings.common, "run_sync")
    rules = load_checked_rules(settings.rules_file)
    context = default_context()
    if environ is not None:
        context = type(context)(environ=dict(environ), session=context.session)
    actions = build_actions(rules, context)
    store = SyncFirestore(make_client(settings.common))
    gmail = build_gmail_connector(settings.gmail)
    engine = SyncEngine(
        mailboxes=store,
        messages=store,
        action_ledger=store,
        dead_letters=store,
        gmail=gmail,
        rules=rules,
        actions=actions,
        config=settings.engine,
    )
    return SyncWorker(
        verifier=OidcVerifier(settings.oidc) if settings.oidc.enabled else None,
        engine=engine,
        events=store,
        dead_letters=store,
        max_attempts=settings.max_attempts,
        max_body_bytes=settings.max_body_bytes,
        project=settings.common.project,
    )
