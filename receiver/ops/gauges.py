"""Gauges read from the database and the queue at scrape time.

Every process reads the same shared truth, so any web process (or a worker) can answer a
scrape. The queries stay on indexes: the unprocessed events through the partial outbox
index, the open delivery states through `(state, next_attempt_at)`. Terminal states (sent,
skipped, throttled) are deliberately not counted here: they grow without bound, and
`hub_receiver_deliveries_total` already counts them as they happen.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime

from sqlalchemy import func, select

from receiver.db.tables import Delivery, Event
from receiver.jobs.arq_queue import ArqQueue
from receiver.services import Services

log = logging.getLogger("receiver.ops.gauges")

OPEN_DELIVERY_STATES = ("pending", "sending", "failed", "dead", "held")
QUERY_TIMEOUT = 2.0


async def refresh_gauges(services: Services) -> None:
    """Fill the database- and queue-derived gauges; NaN when the database cannot answer."""
    metrics = services.metrics
    try:
        async with asyncio.timeout(QUERY_TIMEOUT):
            unprocessed, oldest, by_state = await _read_database(services)
    except Exception as exc:  # noqa: BLE001 - a scrape must answer; stale numbers must not
        log.warning("metrics: database gauges unavailable: %s", type(exc).__name__)
        metrics.unprocessed_events.set(math.nan)
        metrics.oldest_unprocessed_age.set(math.nan)
        for state in OPEN_DELIVERY_STATES:
            metrics.deliveries_by_state.labels(state=state).set(math.nan)
    else:
        metrics.unprocessed_events.set(unprocessed)
        age = (services.clock() - oldest).total_seconds() if oldest is not None else 0.0
        metrics.oldest_unprocessed_age.set(max(0.0, age))
        for state in OPEN_DELIVERY_STATES:
            metrics.deliveries_by_state.labels(state=state).set(by_state.get(state, 0))
    metrics.queue_depth.set(await queue_depth(services))


async def _read_database(services: Services) -> tuple[int, datetime | None, dict[str, int]]:
    async with services.engine.connect() as conn:
        # `state <> 'processed'` is the outbox index's own predicate, so both reads use it;
        # `failed` (poison) events are not waiting for anything and are left out.
        waiting = (
            await conn.execute(
                select(func.count(), func.min(Event.received_at)).where(
                    Event.state != "processed", Event.state == "received"
                )
            )
        ).one()
        rows = await conn.execute(
            select(Delivery.state, func.count())
            .where(Delivery.state.in_(OPEN_DELIVERY_STATES))
            .group_by(Delivery.state)
        )
        by_state = {state: int(count) for state, count in rows.all()}
        await conn.rollback()
    oldest: datetime | None = waiting[1]
    return int(waiting[0]), oldest, by_state


async def queue_depth(services: Services) -> float:
    """Jobs waiting in Redis; 0 for the in-process runner, -1 when Redis does not answer."""
    queue = services.queue
    if not isinstance(queue, ArqQueue):
        return 0
    try:
        async with asyncio.timeout(QUERY_TIMEOUT):
            depth = await queue.depth()
    except TimeoutError:
        depth = None
    return -1 if depth is None else depth
