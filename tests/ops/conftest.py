"""Fixtures for the ops tests: a sink the rules send to, and the app wired to it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from receiver.dev.sink import SinkState, create_sink_app
from receiver.http.loopback import free_port, serve_app
from receiver.settings import Settings
from tests.ops.support import (
    ADMIN_TOKEN,
    API_KEY,
    MAIL_SECRET,
    WEBHOOK_SECRET,
    RulesFolder,
    Sink,
)
from tests.support.app import RunningApp, running_app

MakeSettings = Callable[..., Settings]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    state = SinkState()
    port = free_port()
    async with serve_app(create_sink_app(state), port=port, lifespan="off"):
        yield Sink(state=state, port=port)
    state.recover()


@pytest.fixture
def rules(tmp_path: Path, sink: Sink) -> RulesFolder:
    folder = tmp_path / "rules"
    folder.mkdir()
    rules = RulesFolder(path=folder, sink=sink)
    rules.write()
    return rules


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only, for tests where the database is not the point."""
    path = tmp_path / "ops.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def ops_settings(make_settings: MakeSettings, rules: RulesFolder) -> Callable[..., Settings]:
    """Settings with the rules folder and distinctive fake secrets; the database is required."""

    def make(database_url: str, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": database_url,
            "rules_path": rules.path,
            "d360_webhook_secret": WEBHOOK_SECRET,
            # No partner id: the key is configured (so it must stay hidden) but never used.
            "d360_api_key": API_KEY,
            "admin_token": ADMIN_TOKEN,
            "client_email_url": f"mailtos://bot:{MAIL_SECRET}@smtp.example.com",
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
async def app(
    ops_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[RunningApp]:
    """The app on SQLite and on PostgreSQL."""
    async with running_app(ops_settings(database_url)) as running:
        yield running


@pytest.fixture
async def sqlite_app(
    ops_settings: Callable[..., Settings], sqlite_url: str
) -> AsyncIterator[RunningApp]:
    async with running_app(ops_settings(sqlite_url)) as running:
        yield running
