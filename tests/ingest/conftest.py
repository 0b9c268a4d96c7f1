"""Fixtures of the ingest tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _migrate_databases_outside_the_event_loop(request: pytest.FixtureRequest) -> None:
    # tests/conftest.py's async `database_url` first asks for the session-scoped
    # `sqlite_template` / `postgres_database` through getfixturevalue(), i.e. inside the
    # running event loop, and they call asyncio.run() (directly and through alembic's env.py):
    # "asyncio.run() cannot be called from a running event loop". Instantiating them here, in
    # a sync fixture that runs before it, keeps that out of the loop. Remove once the shared
    # conftest does it itself.
    if "database_url" not in request.fixturenames:
        return
    callspec = getattr(request.node, "callspec", None)
    backend = callspec.params.get("database_url") if callspec else None
    if backend == "sqlite":
        request.getfixturevalue("sqlite_template")
    elif backend == "postgresql":
        request.getfixturevalue("postgres_database")
