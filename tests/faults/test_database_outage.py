"""Promise: nothing is acknowledged that is not committed, and a database outage heals itself.

A private PostgreSQL is stopped hard (`pg_ctl stop -m immediate`, a crash) during a steady
load, then started again. While it is down the receiver must answer 503 (so 360dialog
retries), never 2xx; every event answered 2xx must be stored once it is back; the web and
worker processes recover without a restart; and every stored event is notified exactly
once (sink receipts counted per event).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.faults.harness import LoadReport, dedup_key, fault_stack, record_figures, steady_load

OUTAGE_SECONDS = float(os.environ.get("FAULT_DB_OUTAGE_SECONDS", "6"))
CATCH_UP_SECONDS = float(os.environ.get("FAULT_CATCH_UP_SECONDS", "60"))

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


async def test_database_outage_answers_503_and_recovers_without_loss_or_duplicates(
    tmp_path: Path,
) -> None:
    async with fault_stack(tmp_path) as stack:
        # Slow enough that deliveries are in flight when the database goes away.
        stack.sinks["ops"].state.hang(0.2)
        web = await stack.add_web()
        worker = await stack.add_worker()
        before, during, after = LoadReport(), LoadReport(), LoadReport()

        async def load_for(report: LoadReport, seconds: float, prefix: str) -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(
                steady_load(stack.web_urls, stop, report, prefix=prefix, concurrency=6, pause=0.02)
            )
            await asyncio.sleep(seconds)
            stop.set()
            await task

        await load_for(before, 2.0, "before")
        await stack.pg.stop("immediate")
        await load_for(during, OUTAGE_SECONDS, "during")
        await stack.pg.start()
        # The receiver must heal by itself: give it a moment, then expect plain 200s again.
        await asyncio.sleep(2.0)
        await load_for(after, 3.0, "after")

        acked = before.acked | during.acked | after.acked
        events = await stack.events()
        missing = sorted(key for key in acked if dedup_key(key) not in events)
        assert not missing, f"{len(missing)} acknowledged events are not stored: {missing[:10]}"

        failure: AssertionError | None = None
        started = asyncio.get_running_loop().time()
        try:
            await stack.wait_processed(events, timeout=CATCH_UP_SECONDS, what="all processed")
            await stack.wait_deliveries_settled(timeout=CATCH_UP_SECONDS, what="all delivered")
            caught_up = f"{asyncio.get_running_loop().time() - started:.1f}s"
        except AssertionError as exc:
            failure = exc
            caught_up = f"NOT within {CATCH_UP_SECONDS:.0f}s"
        events = await stack.events()
        receipts = stack.sinks["ops"].ok_receipts()
        event_ids = {row["id"] for row in events.values()}
        twice = {event_id: n for event_id, n in receipts.items() if n > 1}
        tally_during = during.tally()
        record_figures(
            "database_outage",
            outage_seconds=OUTAGE_SECONDS,
            posts=before.sent + during.sent + after.sent,
            outcomes_during_outage=dict(tally_during),
            outcomes_after=dict(after.tally()),
            acknowledged=len(acked),
            acknowledged_during_outage=len(during.acked),
            stored=len(events),
            delivered=len(receipts),
            duplicates=sum(n - 1 for n in twice.values()),
            web_alive=web.alive,
            worker_alive=worker.alive,
            caught_up_after_db_returned=caught_up,
            event_states=dict(await stack.state_counts("events")),
            delivery_states=dict(await stack.state_counts("deliveries")),
        )
        if failure is not None:
            raise failure
        assert tally_during.get("503", 0) > 0, f"no 503 while the database was down: {tally_during}"
        unexpected = {k: v for k, v in tally_during.items() if k not in ("200", "503")}
        assert not unexpected, f"answers other than 200/503 during the outage: {tally_during}"
        assert set(after.tally()) == {"200"}, f"not healed after the outage: {after.tally()}"
        assert web.alive, "the web process died during the outage"
        assert worker.alive, "the worker died during the outage"
        assert event_ids <= set(receipts), f"{len(event_ids - set(receipts))} never notified"
        assert not twice, f"notified more than once: {twice}"
