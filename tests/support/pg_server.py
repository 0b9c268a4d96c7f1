"""A private PostgreSQL cluster for fault tests: stop it hard and start it again on one port.

Fault tests must never stop the machine's shared PostgreSQL (SERVICES.md), so each one runs
its own throw-away cluster: `initdb` into a temporary folder (trust auth, user `postgres`),
`pg_ctl start` on a free loopback port with its socket in that folder, `pg_ctl stop -m
immediate` to simulate a crash (the next start runs crash recovery from the WAL, as after a
real one). When the tests run as root the PostgreSQL binaries run as the `postgres` user,
since `initdb` refuses to run as root.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Literal

import asyncpg
import pytest

from receiver.http.loopback import free_port

HOST = "127.0.0.1"
PG_BIN = Path(os.environ.get("FAULT_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT = 30
StopMode = Literal["immediate", "fast", "smart"]


class PostgresServer:
    """One PostgreSQL cluster in `directory`, on a fixed loopback port."""

    def __init__(self, directory: Path, *, bin_dir: Path = PG_BIN) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.log_path = directory / "postgres.log"
        self.port = free_port(HOST)
        self._bin = bin_dir
        self._run_as: str | None = None
        if os.geteuid() == 0:
            self._run_as = "postgres"
            owner = pwd.getpwnam(self._run_as)
            os.chown(directory, owner.pw_uid, owner.pw_gid)

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self._bin / program), *args]
        if self._run_as is not None:
            return ["runuser", "-u", self._run_as, "--", *command]
        return command

    async def _run(self, command: Sequence[str]) -> None:
        result = await asyncio.to_thread(
            subprocess.run, list(command), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}\n{self.log_tail()}"
            )

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (asyncpg driver) of `database` on this cluster."""
        return f"postgresql+asyncpg://postgres@{HOST}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """The plain libpq/asyncpg DSN of `database` on this cluster."""
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    async def init(self) -> None:
        await self._run(
            self._command(
                "initdb",
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            )
        )

    async def start(self) -> None:
        """Start the cluster (again, on the same port); return once it accepts connections."""
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses={HOST} "
            "-c max_connections=300 -c shared_buffers=64MB"
        )
        await self._run(
            self._command(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(START_TIMEOUT),
                "-o",
                options,
                "start",
            )
        )

    async def stop(self, mode: StopMode = "immediate") -> None:
        """Stop the cluster; `immediate` kills it without a checkpoint, like a crash."""
        await self._run(
            self._command(
                "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(START_TIMEOUT), "stop"
            )
        )

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    async def create_database(self, name: str) -> str:
        """Create database `name`; return its SQLAlchemy URL."""
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: a missing server is a failure)")
    pytest.skip(message)


@contextlib.asynccontextmanager
async def private_postgres() -> AsyncIterator[PostgresServer]:
    """Yield a running private cluster; skipped (failed under CI) without the binaries."""
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        _missing(f"no initdb/pg_ctl in {PG_BIN} (set FAULT_PG_BIN): the fault test needs them")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        _missing("running as root without `runuser`: initdb cannot run as root")
    folder = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    server = PostgresServer(folder)
    try:
        await server.init()
        await server.start()
        yield server
    finally:
        if server.running:
            with contextlib.suppress(RuntimeError):
                await server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
