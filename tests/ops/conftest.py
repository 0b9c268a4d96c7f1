"""Fixtures for the ops tests: a sink the rules send to, and the app wired to it."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from receiver.dev.loopback import free_port, serve_app
from receiver.dev.sink import SinkState, create_sink_app
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


@pytest.fixture(autouse=True)
def _migrate_databases_outside_the_event_loop(request: pytest.FixtureRequest) -> None:
    # Same work-around as tests/ingest/conftest.py: tests/conftest.py's async `database_url`
    # builds the session-scoped databases inside the running loop, where their asyncio.run()
    # fails. Building them first, in this sync fixture, keeps that out of the loop.
    needs = set(request.fixturenames)
    callspec = getattr(request.node, "callspec", None)
    backend = callspec.params.get("database_url") if callspec else None
    wanted = []
    if backend == "sqlite" or "sqlite_url" in needs:
        wanted.append("sqlite_template")
    if backend == "postgresql":
        wanted.append("postgres_database")
    with warnings.catch_warnings():
        # alembic >= 1.16 warns that alembic.ini has no `path_separator` (not ours to edit;
        # reported); it is about sys.path splitting, which `prepend_sys_path = .` never needs.
        warnings.filterwarnings("ignore", "No path_separator found", DeprecationWarning)
        for name in wanted:
            request.getfixturevalue(name)


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
def sqlite_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """SQLite only, for tests where the database is not the point."""
    path = tmp_path / "ops.db"
    # Asked for by name so the autouse fixture above builds it first (see there).
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
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
