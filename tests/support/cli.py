"""Run `hub-receiver` as ops do: its own process, configured by the environment only."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Mapping, Sequence

from tests.support.processes import REPO, process_env


def hub_receiver(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0, **variables: object
) -> subprocess.CompletedProcess[str]:
    """Run `hub-receiver ARGS` with `env` and `variables` as its only app settings.

    A variable may be named as the setting (`database_url=`) or as the variable
    (`DATABASE_URL=`); none of the developer's app variables leak in (`process_env`).
    """
    return _run(args, _environment(env, variables), timeout)


async def hub_receiver_async(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0, **variables: object
) -> subprocess.CompletedProcess[str]:
    """`hub_receiver` off the event loop, so servers in this loop keep answering meanwhile."""
    return await asyncio.to_thread(_run, args, _environment(env, variables), timeout)


def _environment(env: Mapping[str, str] | None, variables: Mapping[str, object]) -> dict[str, str]:
    values = {"LOG_FORMAT": "json", **(env or {})}
    values.update({name.upper(): str(value) for name, value in variables.items()})
    return process_env(values)


def _run(
    args: Sequence[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
