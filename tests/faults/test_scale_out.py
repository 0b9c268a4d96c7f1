"""Promise: web and worker scale out; a duplicate webhook never notifies twice.

Two `serve` processes and two workers share one private PostgreSQL and one private Redis.
2,000 unique events plus 500 redeliveries of some of them (the same body again, as
360dialog retries) are posted round-robin to both webs, the copies interleaved with the
originals. Exactly one notification per unique event must reach the target: none twice,
none missing.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from pathlib import Path

import pytest

from tests.faults.harness import LoadReport, fault_stack, post_all, probe_body, record_figures

UNIQUE = int(os.environ.get("FAULT_SCALE_UNIQUE", "2000"))
DUPLICATES = int(os.environ.get("FAULT_SCALE_DUPLICATES", "500"))

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


async def test_two_webs_and_two_workers_notify_each_unique_event_exactly_once(
    tmp_path: Path,
) -> None:
    async with fault_stack(tmp_path) as stack:
        await asyncio.gather(stack.add_web(), stack.add_web())
        await asyncio.gather(stack.add_worker(), stack.add_worker())
        prefix = uuid.uuid4().hex[:8]
        originals = [(f"{prefix}-{n}", probe_body(f"{prefix}-{n}", n)) for n in range(UNIQUE)]
        rng = random.Random(7)
        copies = rng.sample(originals, DUPLICATES)
        items = list(originals)
        for copy in copies:  # each copy lands after its original, somewhere later
            position = items.index(copy) + 1
            items.insert(rng.randint(position, len(items)), copy)
        report = LoadReport()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await post_all(stack.web_urls(), items, report, concurrency=16)
        post_seconds = loop.time() - started

        tally = report.tally()
        assert tally == {"200": UNIQUE + DUPLICATES}, tally
        events = await stack.events()
        assert len(events) == UNIQUE
        await stack.wait_processed(events, timeout=150, what="every event processed")
        await stack.wait_deliveries_settled(timeout=120, what="every delivery sent")
        done_seconds = loop.time() - started

        receipts = stack.sinks["ops"].ok_receipts()
        twice = {event_id: n for event_id, n in receipts.items() if n > 1}
        answers = list(report.acked_bodies.values())
        deliveries = await stack.deliveries()
        record_figures(
            "scale_out",
            webs=2,
            workers=2,
            unique=UNIQUE,
            duplicates_posted=DUPLICATES,
            posts=report.sent,
            acknowledged=sum(int(v) for k, v in tally.items() if k == "200"),
            answered_duplicate=sum(1 for results in report.outcomes.values() if len(results) > 1),
            stored=len(events),
            deliveries=len(deliveries),
            delivered=len(receipts),
            duplicates=sum(n - 1 for n in twice.values()),
            post_seconds=round(post_seconds, 1),
            all_delivered_after_s=round(done_seconds, 1),
            last_answer_kinds=sorted(set(answers)),
        )
        assert len(deliveries) == UNIQUE
        assert len(receipts) == UNIQUE, f"{UNIQUE - len(receipts)} unique events never notified"
        assert not twice, f"{len(twice)} events notified more than once"
        assert {row["id"] for row in events.values()} == set(receipts)
