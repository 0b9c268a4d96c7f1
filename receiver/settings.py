"""Settings: the only module that reads the environment.

`Settings` is built at the edges (CLI, app factory, worker) and passed down. Every variable
is documented in the README's configuration table; a bad value stops start-up with a
message naming the variable (see `load_settings`).
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from receiver.durations import parse_duration

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./hub-receiver.db"
DEFAULT_API_BASE = "https://hub.360dialog.io/api/v2"

HEALTH_MIN_INTERVAL = 300.0  # seconds; also the per-number floor between health requests
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCHEME_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,15}$")


class SettingsError(Exception):
    """The environment holds a value we cannot run with; the message names the variable."""


def normalise_database_url(url: str) -> str:
    """Map Heroku-style and plain PostgreSQL URLs onto the asyncpg driver; SQLite onto aiosqlite."""
    url = url.strip()
    for prefix in (
        "postgres://",
        "postgresql://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("postgresql+asyncpg://"):
        return url
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    if url.startswith("sqlite+aiosqlite://"):
        return url
    raise ValueError(
        "expected a PostgreSQL URL (postgres://, postgresql://, postgresql+asyncpg://) "
        "or a SQLite URL (sqlite:///path.db)"
    )


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$", re.IGNORECASE)
_RATE_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str) -> float | None:
    """Seconds between requests for a rate like `5/s`, `30/m`, `100/h`; None for `off`."""
    if text.strip().lower() == "off":
        return None
    match = _RATE.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a rate; use N/s, N/m or N/h (e.g. 5/s), or off")
    return _RATE_PER[match.group(2).lower()] / float(match.group(1))


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything hub-receiver reads from the environment (names are the upper-case fields)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the database")
    redis_url: str | None = Field(
        None, description="Redis for the arq job queue; unset = in-process"
    )
    host: str = Field("127.0.0.1", description="interface `serve` binds to")
    port: int = Field(8000, ge=1, le=65535, description="port `serve` listens on")
    web_concurrency: int = Field(1, ge=1, le=64, description="uvicorn worker processes")

    d360_partner_id: str | None = None
    d360_api_key: SecretStr | None = None
    d360_username: str | None = None
    d360_password: SecretStr | None = None
    d360_api_base: str = DEFAULT_API_BASE
    d360_timeout: float = Field(10.0, gt=0)
    partner_hub_url: str = "https://hub.360dialog.com"

    d360_webhook_secret: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    webhook_shared_secret: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    webhook_shared_secret_header: str = "x-webhook-token"
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # A whole body must arrive within this; a client that stops sending gets 408.
    body_timeout: Annotated[float, NoDecode] = Field(10.0, gt=0, le=300)
    # Request line plus headers; larger gets 431 before the app sees the request.
    max_header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)

    permission_redirect_url: str | None = None

    rules_path: Path = Path("routing_rules")
    # Extra ${VAR} values for the rules, over the environment (`hub-receiver dev` uses it).
    rules_env: dict[str, str] = Field(default_factory=dict)
    admin_token: SecretStr | None = None
    # How long a dashboard login lasts (the signed session cookie's lifetime).
    ui_session_ttl: Annotated[float, NoDecode] = Field(12 * 3600.0, ge=60, le=30 * 86400)
    client_email_url: SecretStr | None = None
    # Safety cap on the built-in `client` target, per client and rolling hour (route.py).
    client_max_per_hour: int = Field(10, ge=1, le=1000)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    # Pipeline timing. Durations accept 30s / 10m / 1h / 2d.
    sweep_interval: Annotated[float, NoDecode] = 15.0
    requeue_after: Annotated[float, NoDecode] = 120.0
    enrich_max_wait: Annotated[float, NoDecode] = 600.0
    delivery_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0]
    )
    # At most 60 s: a send must end well inside its claim lease (pipeline/deliver.py).
    delivery_timeout: Annotated[float, NoDecode] = Field(30.0, gt=0, le=60)
    # Claim leases: a run that holds an event (a send that holds a delivery) longer than this
    # is taken for dead and its work claimed again. The send lease must outlast any send
    # (DELIVERY_TIMEOUT); fault tests shorten both to see recovery within a CI run.
    event_lease: Annotated[float, NoDecode] = Field(120.0, gt=0)
    send_lease: Annotated[float, NoDecode] = Field(90.0, gt=0)
    # The arq worker's limit for one processing run (enrichment included); the event lease
    # covers a run that dies, this one a run that hangs.
    process_timeout: Annotated[float, NoDecode] = Field(90.0, gt=0)
    worker_max_jobs: int = Field(50, ge=1)
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    retention_days: int | None = Field(None, ge=1)

    # Watchers (receiver/watch/). PARTNER_API_RATE is held as seconds between requests
    # ("5/s" -> 0.2; None = "off"), shared by every process through the database.
    partner_api_rate: Annotated[float | None, NoDecode] = 0.2
    reconcile_interval: Annotated[float | None, NoDecode] = 900.0  # None = "off"
    # Client balance (receiver/watch/balance.py): 360dialog allows 1 request per 10 s, so
    # the interval is an aim for one round over all clients, not a promise.
    balance_interval: Annotated[float | None, NoDecode] = Field(3600.0, gt=0)  # None = "off"
    balance_low: Decimal = Decimal(10)  # in the client's currency
    balance_clients: str = "auto"  # auto | all | ID,ID,...

    # Number health (receiver/watch/health.py). 360dialog caches a number's health for 5
    # minutes and asks partners not to call more often, so 5m is the floor as well as the default.
    keys_secret: SecretStr | None = None  # Fernet key that encrypts the numbers' API keys
    health_interval: Annotated[float, NoDecode] = 300.0
    d360_waba_base: str = "https://waba.360dialog.io"
    d360_waba_v2_base: str = "https://waba-v2.360dialog.io"

    @field_validator("partner_api_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        return parse_rate(value) if isinstance(value, str) else value

    @field_validator("balance_clients")
    @classmethod
    def _balance_clients(cls, value: str) -> str:
        word = value.strip().lower()
        if word in {"auto", "all", ""}:
            return word or "auto"
        ids = _split_list(value)
        for client_id in ids:
            if not _CLIENT_ID.match(client_id):
                raise ValueError(f"expected auto, all or client ids, got {client_id!r}")
        return ",".join(ids)

    @field_validator("reconcile_interval", "balance_interval", mode="before")
    @classmethod
    def _optional_interval(cls, value: Any) -> Any:
        if isinstance(value, str):
            return None if value.strip().lower() == "off" else parse_duration(value)
        return value

    @field_validator("d360_webhook_secret", "webhook_shared_secret", mode="before")
    @classmethod
    def _secret_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis:// or rediss:// URL")
        return value.strip()

    @field_validator("client_email_url")
    @classmethod
    def _client_email_url(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here so a wrong URL stops start-up instead of failing every client email;
        # `rules check` also loads it through Apprise. The message never quotes the value.
        raw = value.get_secret_value().strip() if value is not None else ""
        if not raw:
            return None
        scheme, sep, rest = raw.partition("://")
        if not sep or scheme.lower() not in ("mailto", "mailtos"):
            shown = f" (not {scheme.lower()}://)" if sep and _SCHEME_NAME.match(scheme) else ""
            raise ValueError(
                f"expected an Apprise mailto:// or mailtos:// URL{shown}, without recipient"
            )
        if "/" in rest.split("?", 1)[0].rstrip("/"):
            raise ValueError("must not name recipients in its path (the client is the recipient)")
        return SecretStr(raw)

    @field_validator("health_interval", mode="before")
    @classmethod
    def _health_interval(cls, value: Any) -> Any:
        seconds = parse_duration(value) if isinstance(value, str) else value
        if isinstance(seconds, int | float) and seconds < HEALTH_MIN_INTERVAL:
            raise ValueError(
                "must be at least 5m: 360dialog refreshes a number's health every 5 minutes "
                "and asks partners not to ask more often"
            )
        return seconds

    @field_validator("d360_api_base", "partner_hub_url", "d360_waba_base", "d360_waba_v2_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator(
        "sweep_interval",
        "requeue_after",
        "enrich_max_wait",
        "delivery_timeout",
        "event_lease",
        "send_lease",
        "process_timeout",
        "ui_session_ttl",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("body_timeout", mode="before")
    @classmethod
    def _body_timeout(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("delivery_retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = _split_list(value)
            if not parts:
                raise ValueError("expected a comma-separated list of durations, e.g. 30s,5m,1h")
            return [parse_duration(part) for part in parts]
        return value

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with some values replaced, validated like the environment's."""
        return type(self).model_validate({**self.model_dump(), **values})

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def webhook_auth_configured(self) -> bool:
        return bool(self.d360_webhook_secret or self.webhook_shared_secret)

    @property
    def partner_api_configured(self) -> bool:
        has_auth = self.d360_api_key is not None or (
            self.d360_username is not None and self.d360_password is not None
        )
        return bool(self.d360_partner_id) and has_auth


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (plus overrides); SettingsError names the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper() or "environment"
            # pydantic's message, never the input: the input may be a secret.
            lines.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def rules_environment() -> dict[str, str]:
    """The variables `${VAR}` in routing rules may use: the process environment."""
    return dict(os.environ)
