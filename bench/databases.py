"""Fresh databases for each measurement: a PostgreSQL database, a SQLite file, a Redis db.

The PostgreSQL server and Redis are the machine's (127.0.0.1:5432, user postgres, trust;
127.0.0.1:6379); the harness only creates and drops its own database (`hub_bench` by
default) and flushes its own Redis db index (12 by default).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from bench.processes import Code, code_or_default

PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = os.environ.get("BENCH_PG_DATABASE", "hub_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def pg_url(database: str = PG_DATABASE) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _recreate_pg(database: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


def migrate(database_url: str, code: Code | None = None) -> None:
    """Apply the migrations of `code` the way production does (`hub-receiver migrate`).

    The receiver finds alembic.ini and migrations/ next to its own package, so a baseline
    tree is migrated with its own schema.
    """
    code = code_or_default(code)
    subprocess.run(
        [sys.executable, "-m", "receiver", "migrate"],
        cwd=code.root,
        env={**os.environ, **code.env, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
        check=True,
        capture_output=True,
    )


def fresh_pg(code: Code | None = None) -> str:
    """Drop and create the bench database, migrate it, return its SQLAlchemy URL."""
    asyncio.run(_recreate_pg(PG_DATABASE))
    url = pg_url()
    migrate(url, code)
    return url


def fresh_sqlite(directory: Path, name: str, code: Code | None = None) -> str:
    path = directory / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{path}"
    migrate(url, code)
    return url


async def _flush_redis(url: str) -> None:
    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


def flush_redis(url: str = REDIS_URL) -> None:
    asyncio.run(_flush_redis(url))


# Old, processed events spread over 90 days, shaped like what ingest stores (a ~1 KB body,
# headers, parsed fields), so indexes and TOAST look like a database that has run a while.
_SEED_EVENTS = """
INSERT INTO events (dedup_key, correlation_id, source, event_type, known, channel_id,
                    client_id, phone_number, received_at, raw_body, headers, verification,
                    parsed, state, processed_at, attempts, enrichment)
SELECT 'wh:id:seed:' || g,
       substr(md5(g::text), 1, 16),
       'webhook',
       (ARRAY['channel_created','channel_submitted','channel_ready','channel_running',
              'channel_live','account_violation','client_created'])[1 + g % 7],
       true,
       'S' || lpad((g % 5000)::text, 5, '0') || 'CH',
       'S' || lpad((g % 1000)::text, 4, '0') || 'CL',
       '+49151' || lpad((g % 5000)::text, 7, '0'),
       now() - (g::float / $1 * interval '90 days'),
       '{"id":"seed-' || g || '","event":"channel_live","data":{"id":"S' || (g % 5000)
         || 'CH","client_id":"S' || (g % 1000) || 'CL","status":"running","setup_info":'
         || '{"phone_number":"+49151' || (g % 5000) || '","phone_name":"Seed"},'
         || '"waba_account":{"status":"approved","fb_account_status":"verified"},'
         || '"padding":"' || repeat(md5(g::text), 16) || '"}}',
       '{"content-type": "application/json", "signature_present": false}'::jsonb,
       'shared_secret',
       jsonb_build_object('event_type', 'channel_live', 'known', true,
                          'channel_id', 'S' || (g % 5000) || 'CH'),
       'processed',
       now() - (g::float / $1 * interval '90 days'),
       1,
       'enriched'
FROM generate_series(1, $1) AS g
"""


async def _seed_pg(url: str, count: int) -> None:
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(_SEED_EVENTS, count)
        await conn.execute("VACUUM ANALYZE events")
    finally:
        await conn.close()


def seed_pg_events(url: str, count: int) -> None:
    """Bulk-insert `count` processed events in one INSERT ... SELECT generate_series."""
    asyncio.run(_seed_pg(url, count))


async def _scalar(url: str, query: str) -> object:
    conn = await asyncpg.connect(_plain(url))
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


def pg_scalar(url: str, query: str) -> object:
    return asyncio.run(_scalar(url, query))


def pg_server_version() -> str:
    return str(pg_scalar(pg_url("postgres"), "SHOW server_version"))
