"""Settings of the sync worker (`run_sync`), read from the environment once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from inboxsync.config import CommonSettings, EnvReader, GmailSettings, OidcSettings
from inboxsync.errors import ConfigError
from inboxsync.sync.engine import EngineConfig
from inboxsync.sync.quota import DEFAULT_METHOD_UNITS

__all__ = ["SyncSettings"]


@dataclass(frozen=True)
class SyncSettings:
    common: CommonSettings
    oidc: OidcSettings
    rules_file: str
    max_attempts: int
    engine: EngineConfig
    gmail: GmailSettings
    max_body_bytes: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SyncSettings:
        env = EnvReader(environ)
        common = CommonSettings.from_env(env)
        oidc = OidcSettings.from_env(
            env, prefix="INBOXSYNC_SYNC", local_mode=common.local_mode
        )
        engine = EngineConfig(
            lease_s=env.number("INBOXSYNC_LEASE_S", 300.0, minimum=10.0),
            full_sync_days=env.integer(
                "INBOXSYNC_FULL_SYNC_DAYS", 2, minimum=1, maximum=30
            ),
            full_sync_max_messages=env.integer(
                "INBOXSYNC_FULL_SYNC_MAX_MESSAGES", 500, minimum=1, maximum=100_000
            ),
            quota_units_per_minute=env.integer(
                "INBOXSYNC_GMAIL_QUOTA_UNITS_PER_MINUTE", 15_000, minimum=50
            ),
            method_units=_method_units(env),
            max_passes=env.integer("INBOXSYNC_MAX_PASSES", 5, minimum=1, maximum=100),
            message_ttl_days=env.integer(
                "INBOXSYNC_DEDUP_TTL_DAYS", 30, minimum=1, maximum=365
            ),
            action_ttl_days=env.integer(
                "INBOXSYNC_DEDUP_TTL_DAYS", 30, minimum=1, maximum=365
            ),
        )
        if engine.full_sync_days >= engine.message_ttl_days:
            raise ConfigError(
                "INBOXSYNC_FULL_SYNC_DAYS must be below INBOXSYNC_DEDUP_TTL_DAYS, or a"
                " full sync could act again on messages whose dedup record expired"
            )
        return cls(
            common=common,
            oidc=oidc,
            rules_file=env.text("INBOXSYNC_RULES_FILE"),
            max_attempts=env.integer(
                "INBOXSYNC_MAX_ATTEMPTS", 10, minimum=1, maximum=1000
            ),
            engine=engine,
            gmail=GmailSettings.from_env(env),
            max_body_bytes=env.integer(
                "INBOXSYNC_MAX_BODY_BYTES", 64 * 1024, minimum=1024, maximum=10 << 20
            ),
        )


def _method_units(env: EnvReader) -> Mapping[str, int]:
    """INBOXSYNC_GMAIL_QUOTA_UNITS: `method=units` pairs overriding the defaults."""
    units = dict(DEFAULT_METHOD_UNITS)
    for item in env.items("INBOXSYNC_GMAIL_QUOTA_UNITS"):
        method, _, value = item.partition("=")
        method = method.strip()
        if method not in units or not value.strip().isdigit():
            raise ConfigError(
                "INBOXSYNC_GMAIL_QUOTA_UNITS must be comma-separated method=units with"
                f" methods among {', '.join(sorted(units))}; got {item!r}"
            )
        units[method] = int(value)
    return MappingProxyType(units)
