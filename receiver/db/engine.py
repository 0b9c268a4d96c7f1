"""Engine and session factory; the SQLite set-up that keeps concurrent writes correct."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Create the async engine. SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE`."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 30})
        _make_sqlite_safe(engine)
        return engine
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        # A dead database must turn into a quick 503, not a request hanging for minutes.
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 30},
    )


def _make_sqlite_safe(engine: AsyncEngine) -> None:
    # The pysqlite driver's own transaction handling begins lazily and lets concurrent
    # read-then-write lose updates (DEPENDENCIES.md). Take the write lock at BEGIN instead,
    # per SQLAlchemy's documented recipe for the sqlite dialects.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
