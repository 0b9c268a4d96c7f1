"""Promise: Redis down, webhooks are still accepted; queued work catches up when it returns.

A private Redis is stopped during a steady load for FAULT_REDIS_OUTAGE_SECONDS (10 s by
default; 30 s was run too, see docs/reliability.md). Every webhook must still be answered
2xx. Redis comes back empty (it keeps nothing on disk, like the machines' Redis), so the
queued jobs are gone: the database's outbox and the sweep must bring everything back with
no manual step. The test plays the process manager: a worker that exits is restarted.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.faults.harness import (
    LoadReport,
    dedup_key,
    fault_stack,
    record_figures,
    steady_load,
)
from tests.support.processes import supervise

OUTAGE_SECONDS = float(os.environ.get("FAULT_REDIS_OUTAGE_SECONDS", "10"))
# How long after Redis is back everything must have caught up (the backlog grows with the
# outage: about 100 events/s of load pile up while it lasts).
CATCH_UP_SECONDS = float(os.environ.get("FAULT_CATCH_UP_SECONDS", str(60 + 3 * OUTAGE_SECONDS)))

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180 + OUTAGE_SECONDS + 2 * CATCH_UP_SECONDS)]


async def test_webhooks_are_accepted_while_redis_is_down_and_work_catches_up(
    tmp_path: Path,
) -> None:
    async with fault_stack(tmp_path) as stack:
        # A real chat service takes a moment to answer: deliveries are in flight when Redis
        # goes away, as they would be in production.
        stack.sinks["ops"].state.hang(0.2)
        await stack.add_web()
        worker = await stack.add_worker()
        supervising = asyncio.Event()
        supervisor = asyncio.create_task(supervise(worker, supervising))
        before, during, after = LoadReport(), LoadReport(), LoadReport()
        failure: AssertionError | None = None

        async def load_for(report: LoadReport, seconds: float, prefix: str) -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(
                steady_load(stack.web_urls, stop, report, prefix=prefix, concurrency=4, pause=0.05)
            )
            await asyncio.sleep(seconds)
            stop.set()
            await task

        try:
            await load_for(before, 2.0, "before")
            await stack.redis.stop()
            await load_for(during, OUTAGE_SECONDS, "during")
            await stack.redis.start()
            await load_for(after, 2.0, "after")

            acked = before.acked | during.acked | after.acked
            keys = {dedup_key(key) for key in acked}
            events = await stack.events()
            missing = keys - set(events)
            assert not missing, f"{len(missing)} acknowledged events not stored"
            started = asyncio.get_running_loop().time()
            try:
                await stack.wait_processed(
                    events,
                    timeout=CATCH_UP_SECONDS,
                    what="every event processed after Redis returned",
                )
                await stack.wait_deliveries_settled(
                    timeout=CATCH_UP_SECONDS, what="every delivery sent after Redis returned"
                )
                caught_up: str = f"{asyncio.get_running_loop().time() - started:.1f}s"
            except AssertionError as exc:
                failure = exc
                caught_up = f"NOT within {CATCH_UP_SECONDS:.0f}s"
        finally:
            supervising.set()
            restarts = await supervisor

        events = await stack.events()
        receipts = stack.sinks["ops"].ok_receipts()
        event_ids = {row["id"] for row in events.values()}
        twice = {event_id: n for event_id, n in receipts.items() if n > 1}
        record_figures(
            "redis_outage",
            outage_seconds=OUTAGE_SECONDS,
            posts=before.sent + during.sent + after.sent,
            posts_during_outage=during.sent,
            outcomes_during_outage=dict(during.tally()),
            acknowledged=len(acked),
            stored=len(events),
            processed=sum(1 for row in events.values() if row["state"] == "processed"),
            delivered=len(receipts),
            duplicates=sum(n - 1 for n in twice.values()),
            worker_restarts=restarts,
            worker_exit_codes=worker.exits,
            caught_up_after_redis_returned=caught_up,
            event_states=dict(await stack.state_counts("events")),
            delivery_states=dict(await stack.state_counts("deliveries")),
        )
        if failure is not None:
            raise failure
        assert during.sent > 20, "too little load during the outage to prove anything"
        assert set(during.tally()) == {"200"}, (
            f"webhooks were refused while Redis was down: {during.tally()}"
        )
        assert set(before.tally()) | set(after.tally()) == {"200"}
        assert event_ids <= set(receipts), f"{len(event_ids - set(receipts))} never notified"
        assert not twice, f"notified more than once: {twice}"
