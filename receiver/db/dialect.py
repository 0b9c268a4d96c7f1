"""The dialect's INSERT, for the upserts (ON CONFLICT) PostgreSQL and SQLite both speak."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

Upsert = postgresql.Insert | sqlite.Insert


def dialect_name(handle: AsyncSession | AsyncEngine | AsyncConnection) -> str:
    if isinstance(handle, AsyncSession):
        return handle.get_bind().dialect.name
    return handle.dialect.name


def upsert(handle: AsyncSession | AsyncEngine | AsyncConnection, table: Any) -> Upsert:
    """`INSERT INTO table` in the dialect of `handle`, with `on_conflict_do_*` available."""
    if dialect_name(handle) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
