"""Promise: acknowledged means committed; an event answered 2xx survives any crash.

A steady load of unique webhooks runs against a real `serve` process while the test kills
it with SIGKILL several times and starts it again. Afterwards every event that was
answered 2xx must be in the database and end up processed, and delivered exactly once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.faults.harness import (
    LoadReport,
    dedup_key,
    fault_stack,
    record_figures,
    steady_load,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

KILLS = 3


async def test_every_acknowledged_event_survives_kill_9_of_the_web_process(
    tmp_path: Path,
) -> None:
    async with fault_stack(tmp_path) as stack:
        web = await stack.add_web()
        await stack.add_worker()
        report = LoadReport()
        stop = asyncio.Event()
        load = asyncio.create_task(steady_load(stack.web_urls, stop, report, concurrency=12))
        try:
            for _ in range(KILLS):
                await asyncio.sleep(1.5)
                await web.kill()
                await asyncio.sleep(0.3)
                await web.start()
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await load

        acked = report.acked
        tally = report.tally()
        assert len(acked) > 100, f"too little load to prove anything: {tally}"
        assert any(not outcome.isdigit() for outcome in tally), (
            f"no request failed: the kills did not hit the load ({tally})"
        )

        events = await stack.events()
        missing = sorted(key for key in acked if dedup_key(key) not in events)
        assert not missing, f"{len(missing)} acknowledged events are not stored: {missing[:10]}"

        stored = set(events)
        await stack.wait_processed(stored, timeout=60, what="every stored event processed")
        await stack.wait_deliveries_settled(timeout=60, what="every delivery sent")
        events = await stack.events()
        receipts = stack.sinks["ops"].ok_receipts()
        event_ids = {row["id"] for row in events.values()}
        undelivered = sorted(event_ids - set(receipts))
        twice = {event_id: n for event_id, n in receipts.items() if n > 1}
        record_figures(
            "web_crash",
            kills=KILLS,
            posts=report.sent,
            outcomes=dict(tally),
            acknowledged=len(acked),
            stored=len(events),
            stored_not_acknowledged=len(stored) - len({dedup_key(key) for key in acked} & stored),
            processed=sum(1 for row in events.values() if row["state"] == "processed"),
            delivered=len(receipts),
            duplicates=sum(n - 1 for n in twice.values()),
        )
        assert not undelivered, f"{len(undelivered)} stored events never notified"
        assert not twice, f"notified more than once: {twice}"
