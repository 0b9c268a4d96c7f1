"""Two real workers share one database: a watcher runs once per interval between them.

Two `hub-receiver worker` processes on one PostgreSQL database and a private Redis, both
pointed at one fake Partner API, each running the watch scheduler. Only the process that
takes the lease row `watch:reconcile` starts a reconciliation pass, so the fake must see the
passes' channel listings at least RECONCILE_INTERVAL apart. Were both workers to run the
watcher, it would see two listings within a fraction of a second of each other (the workers
start together and tick together) and about twice as many passes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from receiver.dev.fake_hub import FakeHubState, create_fake_hub_app
from receiver.dev.run import DEV_API_KEY, DEV_PARTNER_ID
from receiver.dev.sample_data import default_state
from receiver.http.loopback import serve_app
from tests.support.processes import ServiceProcess, process_env
from tests.support.redis_server import private_redis

pytestmark = pytest.mark.timeout(150)

# Longer than the scheduler's 5 s tick (receiver/watch/scheduler.py), so the lease and not
# the tick decides when the next pass may start.
INTERVAL = 6.0
# With the 5 s tick a pass starts at the first tick after the lease ends: about every 10 s.
# Three of them (0, ~10, ~20 s) need more than 21 s on a loaded machine.
WATCH_FOR = 26.0
# A pass's first request follows its lease by a database round trip or two.
SLACK = 1.0


def reconcile_passes(hub: FakeHubState) -> list[float]:
    """When each reconciliation pass asked for its first page of channels.

    Enrichment lists channels too, but filtered and unsorted; reconcile pages by `sort=id`.
    """
    return sorted(
        r.at
        for r in hub.calls(method="GET", path=f"/partners/{DEV_PARTNER_ID}/channels")
        if r.query.get("sort") == "id" and r.query.get("offset") == "0"
    )


async def test_two_workers_run_reconciliation_once_per_interval_between_them(
    tmp_path: Path, pg_url: str
) -> None:
    hub = default_state(DEV_PARTNER_ID)
    async with (
        private_redis() as redis,
        serve_app(create_fake_hub_app(hub, api_key=DEV_API_KEY)) as hub_url,
    ):
        env = process_env(
            {
                "DATABASE_URL": pg_url,
                "REDIS_URL": redis.url,
                "D360_PARTNER_ID": DEV_PARTNER_ID,
                "D360_API_KEY": DEV_API_KEY,
                "D360_API_BASE": hub_url,
                "RECONCILE_INTERVAL": f"{INTERVAL:.0f}s",
                "BALANCE_INTERVAL": "off",
            }
        )
        workers = [ServiceProcess(f"worker-{n}", "worker", env, log_dir=tmp_path) for n in (1, 2)]
        try:
            await asyncio.gather(*(worker.start() for worker in workers))
            watched_from = time.monotonic()
            await asyncio.sleep(WATCH_FOR)
            watched = time.monotonic() - watched_from
        finally:
            await asyncio.gather(*(worker.stop() for worker in workers))

    passes = reconcile_passes(hub)
    gaps = [later - earlier for earlier, later in itertools.pairwise(passes)]
    logs = [worker.log_text() for worker in workers]
    started = [log.count("watcher reconcile starting") for log in logs]
    detail = (
        f"passes at {[round(at - passes[0], 2) for at in passes]}, started per worker {started}"
    )

    assert len(passes) >= 3, detail  # it does run, interval after interval
    assert all(gap >= INTERVAL - SLACK for gap in gaps), detail
    assert len(passes) <= watched // INTERVAL + 1, detail
    assert sum(started) == len(passes), detail  # each pass is one worker's run
    assert not any("watcher reconcile failed" in log or "Traceback" in log for log in logs)
