"""Promise: at most one notification per (event, rule, target), whatever workers do.

1. A burst of deliveries to a slow target; the arq worker is killed with SIGKILL mid-burst
   and another started. Every delivery must end sent (none lost), and only deliveries that
   were `sending` at the moment of the kill may have reached the target twice (the accepted
   crash window between the send and its mark), so never more than the worker's max_jobs.
2. Two workers side by side in normal operation: no notification twice, none missing,
   even though the test also hands every delivery job to the queue twice more under other
   job ids, as an at-least-once queue may (arq re-running a job, a sweep re-enqueueing):
   the claim on the delivery row, not the queue, must stop the second send.

The worker runs with shortened claim leases and job timeout (FAULT_* knobs, see
tests/support/processes.py): with the production values (2 min event lease, 5 min send
lease, 90 s job timeout) the same recovery takes minutes; docs/reliability.md has the figures.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from receiver.jobs.arq_queue import ArqQueue
from receiver.queue import JobRequest
from tests.faults.harness import (
    LoadReport,
    Stack,
    fault_stack,
    post_all,
    probe_body,
    record_figures,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

MAX_JOBS = 8
SHORT_LEASES = {
    "WORKER_MAX_JOBS": str(MAX_JOBS),
    "DELIVERY_TIMEOUT": "3s",
    "EVENT_LEASE": "10s",
    "SEND_LEASE": "10s",
    "PROCESS_TIMEOUT": "10s",
}


@dataclass(frozen=True)
class ExtraCopy(JobRequest):
    """The same job under another id: what an at-least-once queue may hand a worker."""

    copy: str = "a"

    @property
    def job_id(self) -> str:
        return f"fault-copy-{self.copy}:{self.function}:{self.arg}"


async def post_burst(stack: Stack, count: int) -> LoadReport:
    prefix = uuid.uuid4().hex[:8]
    items = [(f"{prefix}-{n}", probe_body(f"{prefix}-{n}", n)) for n in range(count)]
    report = LoadReport()
    await post_all(stack.web_urls(), items, report)
    assert len(report.acked) == count, report.tally()
    return report


async def test_a_worker_killed_mid_burst_loses_nothing_and_resends_only_in_flight(
    tmp_path: Path,
) -> None:
    async with fault_stack(tmp_path, env=SHORT_LEASES) as stack:
        sink = stack.sinks["ops"]
        sink.state.hang(0.3)
        await stack.add_web()
        first = await stack.add_worker()
        burst = 80
        await post_burst(stack, burst)
        await sink.state.wait_for(20, timeout=60)
        await first.kill()
        in_flight = await stack.query("SELECT id, event_id FROM deliveries WHERE state = 'sending'")
        received_at_kill = len(sink.state.received)
        await stack.add_worker()
        await stack.wait_processed(
            await stack.events(), timeout=90, what="every event processed after the crash"
        )
        await stack.wait_deliveries_settled(timeout=90, what="every delivery settled")

        deliveries = await stack.deliveries()
        receipts = sink.ok_receipts()
        states = {row["state"] for row in deliveries}
        twice = {event_id: n for event_id, n in receipts.items() if n > 1}
        in_flight_events = {row["event_id"] for row in in_flight}
        record_figures(
            "worker_crash",
            events=burst,
            deliveries=len(deliveries),
            received_before_kill=received_at_kill,
            sending_at_kill=len(in_flight),
            delivered=len(receipts),
            duplicates=sum(n - 1 for n in twice.values()),
            delivery_states=sorted(states),
        )
        assert len(deliveries) == burst
        assert states == {"sent"}, f"deliveries not sent: {states}"
        missing = {row["event_id"] for row in deliveries} - set(receipts)
        assert not missing, f"{len(missing)} deliveries never reached the target"
        assert set(twice) <= in_flight_events, (
            f"sent twice but not in flight at the kill: {set(twice) - in_flight_events}"
        )
        assert all(n == 2 for n in twice.values()), f"sent more than twice: {twice}"
        assert len(in_flight) <= MAX_JOBS


async def test_two_workers_side_by_side_never_send_twice(tmp_path: Path) -> None:
    async with fault_stack(tmp_path) as stack:
        sink = stack.sinks["ops"]
        sink.state.hang(0.02)
        await stack.add_web()
        await asyncio.gather(stack.add_worker(), stack.add_worker())
        burst = 300
        queue = ArqQueue(stack.redis.url)
        copied: set[int] = set()

        async def copy_deliveries() -> None:
            while len(copied) < burst:
                rows = await stack.query("SELECT id FROM deliveries")
                new = [row["id"] for row in rows if row["id"] not in copied]
                jobs = [ExtraCopy("deliver", i, copy=c) for i in new for c in ("a", "b")]
                await queue.enqueue_many(jobs)
                copied.update(new)
                await asyncio.sleep(0.05)

        copier = asyncio.create_task(copy_deliveries())
        try:
            await post_burst(stack, burst)
            await asyncio.wait_for(copier, 120)
        finally:
            copier.cancel()
            await queue.close()
        await stack.wait_processed(await stack.events(), timeout=90, what="all processed")
        await stack.wait_deliveries_settled(timeout=90, what="all delivered")
        receipts = sink.ok_receipts()
        twice = {event_id: n for event_id, n in receipts.items() if n > 1}
        per_worker = [worker.log_text().count('"delivery sent"') for worker in stack.workers]
        record_figures(
            "two_workers",
            events=burst,
            extra_job_copies=2 * len(copied),
            delivered=len(receipts),
            duplicates=sum(n - 1 for n in twice.values()),
            sent_per_worker=per_worker,
        )
        assert len(receipts) == burst
        assert not twice, f"notified more than once: {twice}"
        assert all(n > 0 for n in per_worker), f"one worker did nothing: {per_worker}"
