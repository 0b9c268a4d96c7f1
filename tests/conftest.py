"""Shared fixtures: real PostgreSQL / SQLite databases, real Redis, the app on loopback."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from receiver.db.engine import create_engine
from receiver.db.migrate import upgrade
from receiver.db.tables import Base
from receiver.dev.fake_hub import create_fake_hub_app
from receiver.dev.mailbox import Mailbox, run_mailbox
from receiver.dev.sample_data import default_state
from receiver.dev.sink import SinkState, create_sink_app
from receiver.http.loopback import serve_app
from receiver.settings import Settings
from tests.support.fakes import API_KEY, PARTNER_ID, Hub, Sink
from tests.support.servers import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    REDIS_HOST,
    REDIS_PORT,
    admin_pg_url,
    redis_test_db,
    require,
)

REDIS_TEST_DB = redis_test_db(0)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build Settings explicitly: the developer's environment must not leak in."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


# --- databases -------------------------------------------------------------------------


def off_loop(function: Callable[[], Any]) -> Any:
    """Run blocking set-up that calls asyncio.run() (alembic does) outside any running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    off_loop(lambda: upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database, migrated once per session; tests truncate it."""
    require(PG_HOST, PG_PORT, "PostgreSQL")
    name = f"hub_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(admin_pg_url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_pg_url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    off_loop(lambda: asyncio.run(create()))
    url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    off_loop(lambda: upgrade(url))
    yield url
    off_loop(lambda: asyncio.run(drop()))


async def truncate_all(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            names = ", ".join(table.name for table in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on SQLite and on PostgreSQL, on an empty migrated schema."""
    if request.param == "sqlite":
        path = tmp_path / "hub.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    await truncate_all(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only, for tests where the database is not the point."""
    path = tmp_path / "hub-sqlite.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def pg_url(postgres_database: str) -> str:
    """PostgreSQL only (for tests where PostgreSQL's behaviour is the point)."""
    await truncate_all(postgres_database)
    return postgres_database


# --- redis ---------------------------------------------------------------------------------


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    require(REDIS_HOST, REDIS_PORT, "Redis")
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_TEST_DB}"
    client = Redis.from_url(url)
    await client.flushdb()
    yield url
    await client.flushdb()
    await client.aclose()


# --- settings --------------------------------------------------------------------------------


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with fast timings for tests; override anything by keyword."""

    def make(**values: Any) -> Settings:
        defaults: dict[str, Any] = {
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
            "sweep_interval": 0.5,
            "requeue_after": 5.0,
            "log_format": "json",
            # The reconcile watcher would record an event per fake channel at start-up;
            # tests of it turn it on (tests/watch/test_reconcile.py).
            "reconcile_interval": "off",
            # One limit for all Partner API calls is tested in tests/watch/test_limiter.py
            # and test_sweep_budget.py (they set their own); elsewhere 5/s only slows tests
            # that post many events down to a timeout on a loaded machine.
            "partner_api_rate": "1000/s",
        }
        defaults.update(values)
        return Settings(**defaults)

    return make


# --- the fakes of what we do not own -------------------------------------------------------


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    """The fake Partner API, holding the two sample clients."""
    state = default_state(PARTNER_ID)
    async with serve_app(create_fake_hub_app(state, api_key=API_KEY)) as url:
        yield Hub(state=state, url=url)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A json:// target that records what it is sent."""
    state = SinkState()
    async with serve_app(create_sink_app(state)) as base_url:
        try:
            yield Sink(state=state, base_url=base_url)
        finally:
            state.recover()  # releases hanging requests so the server can stop


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """An SMTP server on loopback that keeps every email."""
    with run_mailbox() as box:
        yield box
