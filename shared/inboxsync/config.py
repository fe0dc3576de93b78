"""Settings read once from environment variables, validated at start-up.

Every problem raises ConfigError naming the variable and what it should hold,
so a misconfigured deploy fails at its first request with a readable log line
instead of misbehaving later. The README's configuration table lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from inboxsync.errors import ConfigError

__all__ = [
    "DEFAULT_CERTS_URL",
    "DEFAULT_ISSUERS",
    "CommonSettings",
    "EnvReader",
    "GmailSettings",
    "OidcSettings",
    "PushSettings",
    "QueueSettings",
]

DEFAULT_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
DEFAULT_ISSUERS = ("https://accounts.google.com", "accounts.google.com")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class EnvReader:
    """Typed access to an environment mapping; every failure names the variable."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        value = self._env.get(name)
        return value.strip() if value is not None else None

    def text(self, name: str, default: str | None = None) -> str:
        value = self.raw(name)
        if value:
            return value
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default

    def optional(self, name: str) -> str | None:
        return self.raw(name) or None

    def integer(
        self, name: str, default: int, *, minimum: int, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if not value:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
        if number < minimum or (maximum is not None and number > maximum):
            upper = "" if maximum is None else f" and at most {maximum}"
            raise ConfigError(f"{name} must be at least {minimum}{upper}, got {number}")
        return number

    def number(self, name: str, default: float, *, minimum: float) -> float:
        value = self.raw(name)
        if not value:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if number < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {number}")
        return number

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")

    def items(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(name)
        if not value:
            return default
        return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class OidcSettings:
    """How to check the Google-signed OIDC token on an incoming request."""

    enabled: bool
    audience: str
    allowed_emails: tuple[str, ...]
    issuers: tuple[str, ...] = DEFAULT_ISSUERS
    certs_url: str = DEFAULT_CERTS_URL

    @classmethod
    def from_env(cls, env: EnvReader, *, prefix: str, local_mode: bool) -> OidcSettings:
        """Read <prefix>_AUDIENCE / <prefix>_ALLOWED_EMAILS plus the shared ones."""
        if local_mode:
            return cls(enabled=False, audience="", allowed_emails=())
        audience_var = f"{prefix}_AUDIENCE"
        emails_var = f"{prefix}_ALLOWED_EMAILS"
        audience = env.text(audience_var)
        emails = tuple(e.lower() for e in env.items(emails_var))
        if not emails:
            raise ConfigError(
                f"{emails_var} is required: the comma-separated service account"
                " e-mails allowed to call this function"
            )
        return cls(
            enabled=True,
            audience=audience,
            allowed_emails=emails,
            issuers=env.items("INBOXSYNC_OIDC_ISSUERS", DEFAULT_ISSUERS),
            certs_url=env.text("INBOXSYNC_OIDC_CERTS_URL", DEFAULT_CERTS_URL),
        )


@dataclass(frozen=True)
class CommonSettings:
    """Settings every function shares."""

    project: str
    firestore_database: str
    local_mode: bool
    log_level: str
    firestore_emulator_host: str | None
    tasks_emulator_host: str | None

    @classmethod
    def from_env(cls, env: EnvReader) -> CommonSettings:
        local_mode = env.flag("INBOXSYNC_LOCAL_MODE")
        firestore_host = env.optional("FIRESTORE_EMULATOR_HOST")
        tasks_host = env.optional("CLOUD_TASKS_EMULATOR_HOST")
        if local_mode and not (firestore_host and tasks_host):
            # Local mode switches authentication off; tie it to the emulators so
            # a stray variable in a real deploy cannot open the endpoints.
            raise ConfigError(
                "INBOXSYNC_LOCAL_MODE=true also needs FIRESTORE_EMULATOR_HOST and"
                " CLOUD_TASKS_EMULATOR_HOST: local mode only runs against emulators"
            )
        level = env.text("INBOXSYNC_LOG_LEVEL", "INFO").upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(
                "INBOXSYNC_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR,"
                f" got {level!r}"
            )
        return cls(
            project=env.text("INBOXSYNC_PROJECT"),
            firestore_database=env.text("INBOXSYNC_FIRESTORE_DATABASE", "(default)"),
            local_mode=local_mode,
            log_level=level,
            firestore_emulator_host=firestore_host,
            tasks_emulator_host=tasks_host,
        )


@dataclass(frozen=True)
class QueueSettings:
    """Where sync tasks go, and the identity Cloud Tasks calls run_sync with."""

    project: str
    location: str
    queue: str
    sync_url: str
    service_account: str | None
    sync_audience: str

    @property
    def queue_path(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/queues/{self.queue}"

    @classmethod
    def from_env(cls, env: EnvReader, common: CommonSettings) -> QueueSettings:
        sync_url = env.text("INBOXSYNC_SYNC_URL")
        if not sync_url.startswith(("https://", "http://")):
            raise ConfigError(
                f"INBOXSYNC_SYNC_URL must be an http(s) URL, got {sync_url!r}"
            )
        service_account = env.optional("INBOXSYNC_TASKS_SERVICE_ACCOUNT")
        if not common.local_mode and not service_account:
            raise ConfigError(
                "INBOXSYNC_TASKS_SERVICE_ACCOUNT is required: the service account"
                " whose OIDC token Cloud Tasks attaches to each sync request"
            )
        return cls(
            project=common.project,
            location=env.text("INBOXSYNC_TASKS_LOCATION"),
            queue=env.text("INBOXSYNC_TASKS_QUEUE"),
            sync_url=sync_url,
            service_account=service_account,
            sync_audience=env.text("INBOXSYNC_SYNC_AUDIENCE", sync_url),
        )


@dataclass(frozen=True)
class GmailSettings:
    """How to reach Gmail: the API root and the credentials to ask for."""

    api_url: str | None  # the local sandbox's root; None is the real Gmail
    scopes: tuple[str, ...]
    timeout_s: float
    delegated_admin: str | None

    @classmethod
    def from_env(cls, env: EnvReader) -> GmailSettings:
        api_url = env.optional("INBOXSYNC_GMAIL_API_URL")
        if api_url and not api_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"INBOXSYNC_GMAIL_API_URL must be an http(s) URL, got {api_url!r}"
            )
        return cls(
            api_url=api_url,
            scopes=env.items(
                "INBOXSYNC_GMAIL_SCOPES",
                ("https://www.googleapis.com/auth/gmail.modify",),
            ),
            timeout_s=env.number("INBOXSYNC_GMAIL_TIMEOUT_S", 30.0, minimum=1.0),
            delegated_admin=env.optional("INBOXSYNC_DELEGATED_ADMIN"),
        )


@dataclass(frozen=True)
class PushSettings:
    """Settings of the push receiver (`receive_push`)."""

    common: CommonSettings
    oidc: OidcSettings
    queue: QueueSettings
    event_ttl_days: int
    max_body_bytes: int
    rpc_timeout_s: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PushSettings:
        env = EnvReader(environ)
        common = CommonSettings.from_env(env)
        oidc = OidcSettings.from_env(
            env, prefix="INBOXSYNC_PUSH", local_mode=common.local_mode
        )
        return cls(
            common=common,
            oidc=oidc,
            queue=QueueSettings.from_env(env, common),
            event_ttl_days=env.integer(
                "INBOXSYNC_PUSH_EVENT_TTL_DAYS", 7, minimum=1, maximum=31
            ),
            max_body_bytes=env.integer(
                "INBOXSYNC_MAX_BODY_BYTES", 64 * 1024, minimum=1024, maximum=10 << 20
            ),
            # Must stay well under the push subscription's ack deadline (10 s by
            # default), or Pub/Sub redelivers while we are still waiting.
            rpc_timeout_s=env.number("INBOXSYNC_RPC_TIMEOUT_S", 5.0, minimum=0.1),
        )
