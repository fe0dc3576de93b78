from __future__ import annotations

import pytest

from inboxsync.config import PushSettings
from inboxsync.errors import ConfigError

BASE = {
    "INBOXSYNC_PROJECT": "proj",
    "INBOXSYNC_PUSH_AUDIENCE": "https://r.example/receive_push",
    "INBOXSYNC_PUSH_ALLOWED_EMAILS": "Push@proj.iam.gserviceaccount.com, other@x.io",
    "INBOXSYNC_TASKS_LOCATION": "europe-west1",
    "INBOXSYNC_TASKS_QUEUE": "inboxsync-sync",
    "INBOXSYNC_SYNC_URL": "https://r.example/run_sync",
    "INBOXSYNC_TASKS_SERVICE_ACCOUNT": "tasks@proj.iam.gserviceaccount.com",
}


def test_defaults_and_derived_values() -> None:
    settings = PushSettings.from_env(BASE)

    assert (
        settings.queue.queue_path
        == "projects/proj/locations/europe-west1/queues/inboxsync-sync"
    )
    assert settings.queue.sync_audience == BASE["INBOXSYNC_SYNC_URL"]
    assert settings.oidc.enabled
    assert settings.oidc.allowed_emails == (
        "push@proj.iam.gserviceaccount.com",
        "other@x.io",
    )
    assert settings.event_ttl_days == 7
    assert settings.common.firestore_database == "(default)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"INBOXSYNC_PROJECT": ""}, "INBOXSYNC_PROJECT is required"),
        ({"INBOXSYNC_PUSH_AUDIENCE": ""}, "INBOXSYNC_PUSH_AUDIENCE is required"),
        (
            {"INBOXSYNC_PUSH_ALLOWED_EMAILS": " , "},
            "INBOXSYNC_PUSH_ALLOWED_EMAILS is required",
        ),
        ({"INBOXSYNC_TASKS_QUEUE": ""}, "INBOXSYNC_TASKS_QUEUE is required"),
        ({"INBOXSYNC_SYNC_URL": "ftp://x"}, "INBOXSYNC_SYNC_URL must be an http"),
        (
            {"INBOXSYNC_TASKS_SERVICE_ACCOUNT": ""},
            "INBOXSYNC_TASKS_SERVICE_ACCOUNT is required",
        ),
        (
            {"INBOXSYNC_PUSH_EVENT_TTL_DAYS": "0"},
            "INBOXSYNC_PUSH_EVENT_TTL_DAYS must be at least 1",
        ),
        ({"INBOXSYNC_PUSH_EVENT_TTL_DAYS": "seven"}, "must be a whole number"),
        (
            {"INBOXSYNC_MAX_BODY_BYTES": "12"},
            "INBOXSYNC_MAX_BODY_BYTES must be at least 1024",
        ),
        (
            {"INBOXSYNC_RPC_TIMEOUT_S": "fast"},
            "INBOXSYNC_RPC_TIMEOUT_S must be a number",
        ),
        ({"INBOXSYNC_LOG_LEVEL": "LOUD"}, "INBOXSYNC_LOG_LEVEL must be"),
        (
            {"INBOXSYNC_LOCAL_MODE": "maybe"},
            "INBOXSYNC_LOCAL_MODE must be true or false",
        ),
        ({"INBOXSYNC_LOCAL_MODE": "true"}, "also needs FIRESTORE_EMULATOR_HOST"),
    ],
)
def test_each_bad_setting_is_named(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PushSettings.from_env({**BASE, **change})


def test_local_mode_turns_auth_off_only_with_emulators() -> None:
    env = {
        **BASE,
        "INBOXSYNC_LOCAL_MODE": "yes",
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1",
        "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:2",
        "INBOXSYNC_PUSH_AUDIENCE": "",
        "INBOXSYNC_TASKS_SERVICE_ACCOUNT": "",
    }

    settings = PushSettings.from_env(env)

    assert not settings.oidc.enabled
    assert settings.queue.service_account is None
