"""Run hub-receiver's real processes (`serve`, `worker`, `migrate`) as subprocesses.

Fault tests need the real thing: separate OS processes that can be killed with SIGKILL in
the middle of a request or a job, restarted, and run side by side. Each process is started
as `python -m receiver <command>` with an explicit environment (nothing leaks in from the
developer's shell), its output appended to a log file, and (for `serve`) waited for until
`/healthz` answers.

Fault tests shorten the claim leases and the job timeout through ordinary settings
(`EVENT_LEASE`, `SEND_LEASE`, `PROCESS_TIMEOUT`), so crash recovery, which the production
values make take minutes, fits in a CI run. `docs/reliability.md` says which tests use them
and what the real values cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from receiver.settings import Settings

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# PYTHONASYNCIODEBUG: any non-empty value (even "0") turns asyncio's slow debug mode on.
NOT_INHERITED = ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE")


def process_env(values: Mapping[str, Any]) -> dict[str, str]:
    """The environment for a hub-receiver process: ours, plus `values`, nothing of the app's.

    Every variable the app reads is dropped from the inherited environment first, so a
    developer's DATABASE_URL or REDIS_URL can never point a fault test at a shared server.
    """
    app_names = {name.upper() for name in Settings.model_fields}
    env = {
        name: value
        for name, value in os.environ.items()
        if name.upper() not in app_names and name not in NOT_INHERITED
    }
    env.update(PYTHONUNBUFFERED="1", LOG_FORMAT="json", LOG_LEVEL="INFO")
    env.update({name: str(value) for name, value in values.items() if value is not None})
    return env


def run_migrations(env: Mapping[str, str], *, log_path: Path) -> None:
    """`hub-receiver migrate` against env's DATABASE_URL; raise with the output on failure."""
    result = subprocess.run(
        [sys.executable, "-m", "receiver", "migrate"],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"migrate failed ({result.returncode}):\n{result.stderr[-3000:]}")


class ServiceProcess:
    """One `serve` or `worker` process that can be started, killed and restarted."""

    def __init__(
        self,
        name: str,
        command: str,
        env: Mapping[str, str],
        *,
        log_dir: Path,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env)
        self.port = port
        if port is not None:
            self.env["PORT"] = str(port)
            self.env["HOST"] = "127.0.0.1"
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0
        self.exits: list[int] = []

    @property
    def url(self) -> str:
        if self.port is None:
            raise ValueError(f"{self.name} serves no HTTP")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "receiver", self.command]

    async def start(self, *, wait: bool = True) -> None:
        if self.alive:
            return
        self._close_log()
        self._log = self.log_path.open("ab")
        self._log.write(
            f"\n===== start #{self.starts + 1} of {self.name} at {time.time():.3f}\n".encode()
        )
        self._log.flush()
        self._process = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once
            self._argv(),
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a signal meant for the test run's process group (a Ctrl-C, a
            # CI runner's cleanup) does not reach it; the test decides when it stops.
            start_new_session=True,
        )
        self.starts += 1
        if wait:
            await self.wait_started()

    async def wait_started(self, timeout: float = START_TIMEOUT) -> None:
        """For `serve`: until /healthz answers 200; for `worker`: until arq says it started."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if not self.alive:
                    raise RuntimeError(f"{self.name} exited while starting:\n{self.log_tail()}")
                if self.port is not None:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{self.url}/healthz")).status_code == 200:
                            return
                elif "Starting worker for" in self.log_tail(20_000):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} did not start in {timeout}s:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or the OOM killer."""
        await self._signal(signal.SIGKILL)

    async def terminate(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM and wait; SIGKILL if it does not stop within `timeout`."""
        await self._signal(signal.SIGTERM, timeout=timeout)

    async def _signal(self, signum: signal.Signals, *, timeout: float = STOP_TIMEOUT) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signum)
            try:
                await asyncio.to_thread(process.wait, timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        self._record_exit()

    def _record_exit(self) -> None:
        if self._process is not None and self._process.returncode is not None:
            self.exits.append(self._process.returncode)
            self._process = None

    def exited(self) -> bool:
        """Whether the process ended by itself (recorded, so a supervisor can restart it)."""
        if self._process is not None and self._process.poll() is not None:
            self._record_exit()
            return True
        return False

    async def restart(self) -> None:
        await self.kill()
        await self.start()

    def log_tail(self, size: int = 4000) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def log_text(self) -> str:
        return self.log_tail(size=50_000_000)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def stop(self) -> None:
        await self.terminate()
        self._close_log()


async def supervise(process: ServiceProcess, stop: asyncio.Event, interval: float = 0.5) -> int:
    """Play the process manager: restart `process` whenever it exits, until `stop` is set.

    Returns how many times it restarted the process.
    """
    restarts = 0
    while not stop.is_set():
        if process.exited():
            restarts += 1
            with contextlib.suppress(RuntimeError):
                await process.start(wait=False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return restarts
