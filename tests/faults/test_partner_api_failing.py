"""Promise: a failing Partner API delays enrichment, never routing; nothing piles up.

The fake Partner API is made slow (past D360_TIMEOUT), then answers 429, then 500, then
broken JSON. Channel events posted in each phase must still be routed and notified within
about ENRICH_MAX_WAIT, marked `not_enriched`; no event is left `received`, and the job
queue drains.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from receiver.dev.fake_hub import FakeHubState
from tests.faults.harness import (
    LoadReport,
    channel_event_body,
    dedup_key,
    fault_stack,
    post_all,
    record_figures,
)
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

PER_PHASE = 4
ENRICH_MAX_WAIT = 3.0


def heal(hub: FakeHubState) -> None:
    hub.slow(0)
    hub._failures.clear()
    hub._bad_json = 0


PHASES: dict[str, Callable[[FakeHubState], None]] = {
    "slow": lambda hub: hub.slow(3.0),
    "429": lambda hub: hub.fail_next(100_000, status=429, retry_after=0.2),
    "500": lambda hub: hub.fail_next(100_000, status=500),
    "bad_json": lambda hub: hub.bad_json(100_000),
}


async def test_events_are_routed_unenriched_when_the_partner_api_fails(tmp_path: Path) -> None:
    env = {"ENRICH_MAX_WAIT": f"{ENRICH_MAX_WAIT}s", "D360_TIMEOUT": "1"}
    async with fault_stack(tmp_path, env=env) as stack:
        await stack.add_web()
        await stack.add_worker()
        figures: dict[str, dict[str, object]] = {}
        loop = asyncio.get_running_loop()
        for phase, break_hub in PHASES.items():
            heal(stack.hub)
            break_hub(stack.hub)
            prefix = f"{phase}-{uuid.uuid4().hex[:6]}"
            keys = [f"{prefix}-{n}" for n in range(PER_PHASE)]
            items = [
                (key, channel_event_body(key, f"P{phase}{n}CH".replace("_", "")))
                for n, key in enumerate(keys)
            ]
            report = LoadReport()
            started = loop.time()
            await post_all(stack.web_urls(), items, report)
            assert len(report.acked) == PER_PHASE, report.tally()
            wanted = [dedup_key(key, "channel_live") for key in keys]
            await stack.wait_processed(
                wanted, timeout=ENRICH_MAX_WAIT + 30, what=f"events routed ({phase})"
            )
            routed_after = loop.time() - started
            events = await stack.events()
            enrichment = sorted({events[key]["enrichment"] for key in wanted})
            figures[phase] = {
                "events": PER_PHASE,
                "routed_within_s": round(routed_after, 1),
                "enrichment": enrichment,
                "hub_requests": len(stack.hub.requests),
            }
            assert enrichment == ["not_enriched"], f"{phase}: {enrichment}"

        await stack.wait_deliveries_settled(timeout=30, what="every delivery sent")
        counts = await stack.state_counts("events")
        receipts = stack.sinks["ops"].ok_receipts()

        async def drained() -> bool:
            return await stack.queue_depth() == 0

        await eventually(drained, timeout=30, what="the job queue drained")
        record_figures(
            "partner_api_failing",
            phases=figures,
            event_states=dict(counts),
            delivered=len(receipts),
            duplicates=sum(n - 1 for n in receipts.values() if n > 1),
            queue_depth=await stack.queue_depth(),
        )
        assert set(counts) == {"processed"}, counts
        assert len(receipts) == PER_PHASE * len(PHASES)
        assert set(receipts.values()) == {1}
