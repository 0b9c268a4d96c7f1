"""The outbox relay: hands committed work to the queue in batches, and sweeps up the rest.

The web process tells the relay which events it just committed; the relay enqueues them in
one batch and marks them handed over (`enqueued_at`). The webhook writer writes that mark
with the row (`marked=True`: no second statement per batch), so the relay only takes it back
when the queue refuses them; a web process killed between its commit and the hand-over
leaves marked rows that the next start-up sweep (which takes every unprocessed event) or,
with other web processes still running, a sweep after `REQUEUE_AFTER` hands over.
If the queue is down nothing is lost:
the rows are still unprocessed in the database, and the sweep (at start-up, then every
`SWEEP_INTERVAL`) re-enqueues every event and delivery that is due and has not been handed
over, or was handed over so long ago (`REQUEUE_AFTER`) that the job must have been lost.
Deterministic job ids make a second hand-over of queued work a no-op, and every job checks
its row before acting, so sweeping twice is harmless.

A sweep that finds nothing doubles the wait before the next one, up to IDLE_SWEEP_FACTOR x
`SWEEP_INTERVAL`: an idle service stops reading its database every interval. The first
delivery after an idle spell is not slowed by it (committed events are handed over at
once, not by the sweep); anything the relay hands over, a sweep that finds work and a queue
that failed bring the interval back to `SWEEP_INTERVAL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from receiver.db.engine import Engine
from receiver.db.store import deliveries, events
from receiver.queue import JobQueue, JobRequest, QueueUnavailableError

log = logging.getLogger("receiver.relay")

SWEEP_BATCH = 1000
PROCESS_EVENT = "process_event"
DELIVER = "deliver"
REENRICH = "reenrich_event"
REENRICH_WINDOW = timedelta(hours=24)  # routed without the Partner API: retried this long
REENRICH_BATCH = 50
IDLE_SWEEP_FACTOR = 4  # an idle relay sweeps every 4 x SWEEP_INTERVAL (60 s by default)


class Relay:
    def __init__(
        self,
        *,
        engine: Engine,
        queue: JobQueue,
        clock: Callable[[], datetime],
        sweep_interval: float,
        requeue_after: float,
        send_lease: float,
    ) -> None:
        self._engine = engine
        self._queue = queue
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._requeue_after = timedelta(seconds=requeue_after)
        self._send_lease = timedelta(seconds=send_lease)
        self._pending: list[int] = []
        self._premarked: set[int] = set()  # pending ids written with their `enqueued_at`
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_sweep_at: datetime | None = None
        # The first sweep after start-up takes every unprocessed event, even one handed over
        # recently: the queue it went to may have died with the previous process. Job ids
        # are deterministic, so what is still queued is not queued twice.
        self._first_sweep = True
        self.queue_ok = True
        self._idle_factor = 1  # doubles after each sweep that found nothing

    def events_committed(self, event_ids: Sequence[int], *, marked: bool = False) -> None:
        """Called by the event writer after each commit (no I/O here).

        `marked`: the rows were written with `enqueued_at` already (taken back if the queue
        refuses them).
        """
        self._pending.extend(event_ids)
        if marked:
            self._premarked.update(event_ids)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        # Whatever was not handed over stays unprocessed in the database for the next sweep.
        with contextlib.suppress(Exception):
            await self._hand_over()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            timeout = max(0.0, next_sweep - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            try:
                handed = await self._hand_over()
                if handed or not self.queue_ok:
                    self._idle_factor = 1
                    next_sweep = min(next_sweep, loop.time() + self._sweep_interval)
                if loop.time() >= next_sweep:
                    quiet = await self.sweep() == 0 and self.queue_ok
                    self._idle_factor = (
                        min(self._idle_factor * 2, IDLE_SWEEP_FACTOR) if quiet else 1
                    )
                    next_sweep = loop.time() + self._sweep_interval * self._idle_factor
            except Exception:  # the relay must outlive any single failure
                log.exception("relay pass failed; retrying at the next sweep")
                next_sweep = loop.time() + min(self._sweep_interval, 5.0)

    async def _hand_over(self) -> int:
        """Enqueue the events committed since the last call; how many were handed over."""
        if not self._pending:
            return 0
        ids, self._pending = self._pending, []
        premarked = self._premarked.intersection(ids)
        self._premarked.difference_update(ids)
        try:
            await self._queue.enqueue_many(
                [JobRequest(PROCESS_EVENT, event_id) for event_id in ids]
            )
        except QueueUnavailableError as exc:
            self.queue_ok = False
            log.warning("queue unavailable (%s): %d events left for the sweep", exc, len(ids))
            if premarked:  # not handed over after all: the next sweep takes them
                async with self._engine.begin() as conn:
                    await events.unmark_events_enqueued(conn, event_ids=sorted(premarked))
            return 0
        self.queue_ok = True
        await self._mark(event_ids=[i for i in ids if i not in premarked])
        return len(ids)

    async def _mark(
        self, *, event_ids: Sequence[int] = (), delivery_ids: Sequence[int] = ()
    ) -> None:
        if not event_ids and not delivery_ids:
            return
        async with self._engine.begin() as conn:
            if event_ids:
                await events.mark_events_enqueued(conn, event_ids=event_ids, at=self._clock())
            if delivery_ids:
                await deliveries.mark_deliveries_enqueued(
                    conn, delivery_ids=delivery_ids, at=self._clock()
                )

    async def sweep(self) -> int:
        """Re-enqueue due work that is not (or no longer) in the queue; return how much."""
        now = self._clock()
        stale = now if self._first_sweep else now - self._requeue_after
        async with self._engine.connect() as conn:
            event_ids = await events.due_event_ids(conn, now=now, stale=stale, limit=SWEEP_BATCH)
            delivery_ids = await deliveries.due_delivery_ids(
                conn,
                now=now,
                stale=stale,
                claim_stale_before=now - self._send_lease,
                limit=SWEEP_BATCH,
            )
            # Routed without the Partner API: try again while the facts still matter.
            reenrich_ids = await events.reenrichment_due_ids(
                conn, now=now, received_after=now - REENRICH_WINDOW, limit=REENRICH_BATCH
            )
            await conn.rollback()
        self.last_sweep_at = now
        if not event_ids and not delivery_ids and not reenrich_ids:
            self._first_sweep = False
            return 0
        jobs = [JobRequest(PROCESS_EVENT, i) for i in event_ids]
        jobs += [JobRequest(DELIVER, i) for i in delivery_ids]
        jobs += [JobRequest(REENRICH, i) for i in reenrich_ids]
        try:
            await self._queue.enqueue_many(jobs)
        except QueueUnavailableError as exc:
            self.queue_ok = False
            log.warning("sweep: queue unavailable (%s), %d jobs wait", exc, len(jobs))
            return 0
        self.queue_ok = True
        self._first_sweep = False
        await self._mark(event_ids=event_ids, delivery_ids=delivery_ids)
        log.info("sweep re-enqueued %d events and %d deliveries", len(event_ids), len(delivery_ids))
        return len(jobs)
