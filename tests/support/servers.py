"""Reach the machine's PostgreSQL and Redis, or say clearly why a test cannot run.

Locally a missing server skips the tests that need it, with the reason; with `CI` set a
missing server fails them (SERVICES.md): CI must never go green by skipping.
"""

from __future__ import annotations

import os
import socket

import pytest

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require(host: str, port: int, what: str) -> None:
    if reachable(host, port):
        return
    message = f"{what} is not reachable on {host}:{port}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: a missing server is a failure)")
    pytest.skip(f"{message}; start it to run this test (see ../shared/SERVICES.md)")


def admin_pg_url(database: str = "postgres") -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def redis_test_db(offset: int) -> int:
    """A Redis database of this test process's own (offset 0 or 1 for the two kinds of use).

    arq's queue key is global within a database, so two pytest processes (xdist workers, or
    a second run on the same machine with TEST_REDIS_DB_BASE set) must never share one: each
    takes two databases of the sixteen, from TEST_REDIS_DB_BASE (default 2) on.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or 0) if worker.startswith("gw") else 0
    base = int(os.environ.get("TEST_REDIS_DB_BASE", "2"))
    db = base + 2 * index + offset
    if db > 15:
        raise RuntimeError(f"no Redis database left for test worker {worker} (db {db} > 15)")
    return db
