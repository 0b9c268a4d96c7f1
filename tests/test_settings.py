"""Settings read from the environment: defaults, normalisation, and errors that name the
variable but never echo a secret."""

from __future__ import annotations

import pytest

from receiver.settings import DEFAULT_DATABASE_URL, SettingsError, load_settings


def test_the_default_database_is_the_embedded_sqlite_file() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.is_sqlite
    assert settings.redis_url is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/hub", "postgresql+asyncpg://u:p@db.example:5432/hub"),
        ("postgresql://u:p@db.example/hub", "postgresql+asyncpg://u:p@db.example/hub"),
        ("postgresql+psycopg2://u@db/hub", "postgresql+asyncpg://u@db/hub"),
        ("postgresql+asyncpg://u@db/hub", "postgresql+asyncpg://u@db/hub"),
        ("  postgres://u@db/hub  ", "postgresql+asyncpg://u@db/hub"),
        ("sqlite:///./other.db", "sqlite+aiosqlite:///./other.db"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ],
)
def test_it_normalises_the_database_url(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    settings = load_settings()
    assert settings.database_url == expected
    assert settings.is_sqlite == expected.startswith("sqlite")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://user:hunter2-db@db.example/hub"),
        ("DATABASE_URL", "hunter2-db"),
        ("PORT", "eighty"),
        ("PORT", "0"),
        ("PORT", "70000"),
        ("REDIS_URL", "http://:hunter2-redis@cache.example:6379/0"),
        ("REDIS_URL", "localhost:6379"),
        ("LOG_LEVEL", "LOUD"),
        ("SWEEP_INTERVAL", "soon"),
        ("DELIVERY_RETRY_SCHEDULE", "30s,later"),
        ("D360_API_BASE", "hub.360dialog.io"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message
    assert "hunter2" not in message


def test_every_bad_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "oracle://scott:tiger@db/hub")
    monkeypatch.setenv("PORT", "-1")
    monkeypatch.setenv("REDIS_URL", "memcached://cache")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    for variable in ("DATABASE_URL", "PORT", "REDIS_URL"):
        assert variable in message
    assert "tiger" not in message


def test_secrets_never_appear_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("D360_WEBHOOK_SECRET", "platform-secret-xyz")
    monkeypatch.setenv("WEBHOOK_SHARED_SECRET", "shared-secret-xyz")
    monkeypatch.setenv("D360_API_KEY", "api-key-xyz")
    monkeypatch.setenv("D360_PASSWORD", "password-xyz")
    monkeypatch.setenv("ADMIN_TOKEN", "admin-token-xyz")
    monkeypatch.setenv("DATABASE_URL", "postgres://hub:db-password-xyz@db:notaport/hub")
    monkeypatch.setenv("PORT", "not-a-port")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value) + repr(caught.value)
    assert "PORT" in message
    assert "xyz" not in message
    assert caught.value.__cause__ is None  # the pydantic error, with its inputs, is not chained


def test_the_secret_values_are_hidden_when_settings_are_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("D360_WEBHOOK_SECRET", "platform-secret-xyz")
    monkeypatch.setenv("D360_API_KEY", "api-key-xyz")
    settings = load_settings()
    assert "xyz" not in repr(settings)
    assert "xyz" not in str(settings)


def test_a_comma_separated_list_of_secrets_is_read_for_rotation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("D360_WEBHOOK_SECRET", "old-secret, new-secret,")
    monkeypatch.setenv("WEBHOOK_SHARED_SECRET", "token-a,token-b")
    settings = load_settings()
    assert [s.get_secret_value() for s in settings.d360_webhook_secret] == [
        "old-secret",
        "new-secret",
    ]
    assert [s.get_secret_value() for s in settings.webhook_shared_secret] == ["token-a", "token-b"]
    assert settings.webhook_auth_configured


def test_without_secrets_webhook_authentication_is_not_configured() -> None:
    settings = load_settings()
    assert settings.d360_webhook_secret == []
    assert not settings.webhook_auth_configured


def test_a_blank_secret_list_is_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("D360_WEBHOOK_SECRET", " , ")
    assert not load_settings().webhook_auth_configured


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("250ms", 0.25),
        ("45", 45.0),
    ],
)
def test_durations_are_read_with_units(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float
) -> None:
    monkeypatch.setenv("SWEEP_INTERVAL", value)
    monkeypatch.setenv("REQUEUE_AFTER", value)
    settings = load_settings()
    assert settings.sweep_interval == pytest.approx(seconds)
    assert settings.requeue_after == pytest.approx(seconds)


def test_the_retry_schedule_is_a_list_of_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_RETRY_SCHEDULE", "30s, 2m,1h")
    assert load_settings().delivery_retry_schedule == [30.0, 120.0, 3600.0]


def test_port_and_redis_url_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/2")
    settings = load_settings()
    assert settings.port == 8123
    assert settings.redis_url == "redis://127.0.0.1:6390/2"


def test_an_empty_redis_url_means_in_process_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "  ")
    assert load_settings().redis_url is None


def test_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("port", "8124")
    assert load_settings().port == 8124
