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

from receiver.db.store import balance, maintenance
from receiver.jobs.arq_queue import ArqQueue
from receiver.services import Services
from receiver.vocabulary import DeliveryState

log = logging.getLogger("receiver.ops.gauges")

OPEN_DELIVERY_STATES = (
    DeliveryState.PENDING,
    DeliveryState.SENDING,
    DeliveryState.FAILED,
    DeliveryState.DEAD,
    DeliveryState.HELD,
    # Waiting in its notification group; `summarised` and `sent_in_group` are terminal
    # (they grow without bound) and are left out like `sent`.
    DeliveryState.GROUPED,
)
QUERY_TIMEOUT = 2.0


async def refresh_gauges(services: Services) -> None:
    """Fill the database- and queue-derived gauges; NaN when the database cannot answer."""
    metrics = services.metrics
    try:
        async with asyncio.timeout(QUERY_TIMEOUT):
            backlog = await maintenance.backlog(
                engine=services.engine, delivery_states=OPEN_DELIVERY_STATES
            )
    except Exception as exc:  # noqa: BLE001 - a scrape must answer; stale numbers must not
        log.warning("metrics: database gauges unavailable: %s", type(exc).__name__)
        metrics.unprocessed_events.set(math.nan)
        metrics.oldest_unprocessed_age.set(math.nan)
        for state in OPEN_DELIVERY_STATES:
            metrics.deliveries_by_state.labels(state=state).set(math.nan)
    else:
        metrics.unprocessed_events.set(backlog.unprocessed_events)
        oldest = backlog.oldest_unprocessed_at
        age = (services.clock() - oldest).total_seconds() if oldest is not None else 0.0
        metrics.oldest_unprocessed_age.set(max(0.0, age))
        for state in OPEN_DELIVERY_STATES:
            count = backlog.deliveries_by_state.get(state, 0)
            metrics.deliveries_by_state.labels(state=state).set(count)
    metrics.queue_depth.set(await queue_depth(services))
    await _balance_round(services)


async def _balance_round(services: Services) -> None:
    """The last finished balance round, from whichever process ran it."""
    metrics = services.metrics
    try:
        async with asyncio.timeout(QUERY_TIMEOUT), services.sessions() as session:
            last = await balance.last_round(session)
    except Exception as exc:  # noqa: BLE001 - a scrape must answer
        log.warning("metrics: balance round unavailable: %s", type(exc).__name__)
        last = None
    if last is None or last.finished_at is None:
        metrics.balance_round_seconds.set(math.nan)
        metrics.balance_round_clients.set(math.nan)
        return
    metrics.balance_round_seconds.set((last.finished_at - last.started_at).total_seconds())
    metrics.balance_round_clients.set(last.clients)


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
