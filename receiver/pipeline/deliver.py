"""`deliver(ctx, delivery_id)`: send one notification, at most once per claim.

The row is claimed before sending (a conditional update to `sending`, only when it is due,
or when an earlier claim is older than the lease: the worker holding it died) and marked
after. A crash between the send and the mark can therefore send one message twice, never
more, and two workers never send the same row at the same time. This is the one place that
catches a send's failure and writes it onto the row (attempts, last error, next attempt).

Claims and records are group commits: the jobs of one process that claim (or record) at
the same moment share one transaction and one statement for all their rows, so a busy
worker pays a round trip per batch instead of per delivery. Each job still waits for its
own row's commit before it sends (or ends), so what a crash can repeat is unchanged: the
sends in flight, at most WORKER_MAX_JOBS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from receiver.db.errors import DATABASE_ERRORS, ROW_REFUSED
from receiver.db.store import channels, deliveries
from receiver.db.tables import Delivery, Event
from receiver.logs import bind_event
from receiver.notify import apprise as transport
from receiver.pipeline import fallbacks
from receiver.pipeline.group_commit import GroupCommit
from receiver.queue import JobContext, JobRequest, QueueUnavailableError, RetryLater
from receiver.services import Services
from receiver.vocabulary import CLIENT_EVENTS, CLIENT_TARGET, DeliveryState

log = logging.getLogger("receiver.deliver")

DB_RETRY = 2.0  # seconds before a job retries after the database failed under it
# The name jobs/registry.py runs `deliver` under (jobs sit above this layer).
DELIVER_JOB = "deliver"


@dataclass(frozen=True)
class Outcome:
    state: str  # sent | failed | dead | skipped
    error: str | None
    next_attempt_at: datetime | None = None
    # When the try ended, so the attempt's record says so even if its batch is written later.
    finished_at: datetime | None = None


def next_retry(
    *, attempts: int, schedule: list[float], now: datetime, rng: random.Random
) -> datetime | None:
    """When to try again after `attempts` failed tries; None when the schedule is used up (pure)."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    # +-20 % jitter so a recovering target is not hit by every delivery at the same second.
    return now + timedelta(seconds=base * rng.uniform(0.8, 1.2))


def first_claims(
    wanted: Sequence[int], claimed: Mapping[int, tuple[Delivery, Event | None]]
) -> list[tuple[Delivery, Event | None] | None]:
    """Give each claimed row to the first job in the batch that asked for it (pure).

    The queue may hold a second job for the same row (a redelivery under another job id);
    when both land in one batch, only the first may send.
    """
    given: set[int] = set()
    result: list[tuple[Delivery, Event | None] | None] = []
    for delivery_id in wanted:
        found = claimed.get(delivery_id)
        result.append(found if delivery_id not in given else None)
        given.add(delivery_id)
    return result


async def claim_deliveries(
    services: Services, delivery_ids: list[int]
) -> list[tuple[Delivery, Event | None] | None]:
    """Claim the due rows among `delivery_ids` in one transaction; each id's row or None."""
    now = services.clock()
    # Longer than any single send (DELIVERY_TIMEOUT is at most 60 s): a `sending` row older
    # than this belongs to a worker that died mid-send, and is claimed again.
    stale_before = now - timedelta(seconds=services.settings.send_lease)
    async with services.sessions.begin() as session:
        claimed = await deliveries.claim_deliveries(
            session, delivery_ids=delivery_ids, now=now, stale_before=stale_before
        )
    return first_claims(delivery_ids, claimed)


async def claim_delivery(
    services: Services, delivery_id: int
) -> tuple[Delivery, Event | None] | None:
    """Claim one row, together with whatever other jobs of this process claim right now."""
    return await _batches(services).claims.submit(delivery_id)


async def resolve_url(
    services: Services, row: Delivery, event: Event
) -> tuple[str | None, str | None]:
    """The URL to send to, or a reason to skip; re-checks a client target's ownership now."""
    if row.target_name != CLIENT_TARGET:
        rules = services.rules.current
        url = rules.target_url(row.target_name)
        if url is None:
            return (
                None,
                f"target '{row.target_name}' is not configured (empty or removed from the rules)",
            )
        return url, None
    mail_url = services.settings.client_email_url
    if mail_url is None:
        return None, "CLIENT_EMAIL_URL is not configured, so clients cannot be emailed"
    if row.client_id is None:
        return None, "no client is known for this event"
    async with services.sessions() as session:
        if event.channel_id is not None and event.event_type not in CLIENT_EVENTS:
            channel = await channels.get_channel(session, channel_id=event.channel_id)
            if channel is None or channel.client_id != row.client_id:
                return None, "the channel no longer belongs to the client this message was for"
        client = await channels.get_client(session, client_id=row.client_id)
    if client is None or not client.contact_email:
        return None, "no contact email is known for this client"
    try:
        return transport.client_email_url(mail_url.get_secret_value(), client.contact_email), None
    except ValueError as exc:
        return None, f"cannot email the client: {exc}"


def _unrecorded(services: Services) -> dict[int, tuple[Delivery, Event, Outcome]]:
    """Outcomes this process could not write (database down): written on the job's retry."""
    found = services.extras.setdefault("unrecorded_deliveries", {})
    assert isinstance(found, dict)
    return found


async def deliver(ctx: JobContext, delivery_id: int) -> None:
    """Claim, send and record one delivery as a unit that a cancellation cannot split.

    A worker stopping (SIGTERM, or losing Redis) cancels its jobs. Cancelled between the
    send and the record, a message that went out would be sent again; so the unit is
    shielded and finished first (bounded by DELIVERY_TIMEOUT), then the job stops.
    """
    services: Services = ctx["services"]
    await _unsplittable(services, _deliver(services, delivery_id))


async def deliver_claimed(services: Services, row: Delivery, event: Event) -> None:
    """Send and record a row its creator wrote already claimed (`route`'s `claim`): as
    `deliver` does after its claim, and as unsplittable."""
    await _unsplittable(services, _send(services, row, event))


async def _unsplittable(services: Services, work: Coroutine[Any, Any, None]) -> None:
    unit = asyncio.ensure_future(work)
    try:
        await asyncio.shield(unit)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(services.settings.delivery_timeout + 15):
                await asyncio.shield(unit)
        raise


async def _deliver(services: Services, delivery_id: int) -> None:
    pending = _unrecorded(services).get(delivery_id)
    if pending is not None:
        # Sent (or tried) earlier by this process; only the record is missing. Never resend.
        row, event, outcome = pending
        await _record_or_keep(services, row, event, outcome)
        _retry_if_due(services, outcome)
        return
    try:
        claimed = await claim_delivery(services, delivery_id)
    except DATABASE_ERRORS as exc:
        log.warning(
            "cannot claim delivery %d: database unavailable (%s)", delivery_id, type(exc).__name__
        )
        raise RetryLater(DB_RETRY) from exc
    if claimed is None:
        services.metrics.jobs.labels(function="deliver", outcome="skipped").inc()
        return
    row, found = claimed
    if found is None:  # the event was deleted under us (retention never deletes unsent ones)
        return
    await _send(services, row, found)


async def _send(services: Services, row: Delivery, event: Event) -> None:
    """Send a claimed row, record its outcome, and ask for a retry when one is due."""
    with bind_event(correlation_id=event.correlation_id, event_id=event.id, delivery_id=row.id):
        outcome = replace(await _attempt(services, row, event), finished_at=services.clock())
        await _record_or_keep(services, row, event, outcome)
        kind = row.target_kind
        if outcome.state == DeliveryState.SENT:
            services.metrics.delivery_latency.labels(target_kind=kind).observe(
                (services.clock() - event.received_at).total_seconds()
            )
        metric = {"failed": "retried"}.get(outcome.state, outcome.state)
        services.metrics.deliveries.labels(target_kind=kind, outcome=metric).inc()
        fields = {
            "rule": row.rule_name,
            "target": row.target_name,
            "target_display": row.target_display,
            "attempt": row.attempts,
            "outcome": outcome.state,
        }
        if outcome.state == DeliveryState.SENT:
            log.info("delivery sent", extra=fields)
        elif outcome.state == DeliveryState.SKIPPED:
            log.info("delivery skipped: %s", outcome.error, extra=fields)
        else:
            log.warning("delivery %s: %s", outcome.state, outcome.error, extra=fields)
    _retry_if_due(services, outcome)


def _retry_if_due(services: Services, outcome: Outcome) -> None:
    if outcome.state == DeliveryState.FAILED and outcome.next_attempt_at is not None:
        raise RetryLater(max(0.0, (outcome.next_attempt_at - services.clock()).total_seconds()))


async def _record_or_keep(
    services: Services, row: Delivery, event: Event, outcome: Outcome
) -> None:
    """Write the outcome; if the database is down, keep it and retry the job shortly."""
    try:
        notices = await _batches(services).records.submit((row, event, outcome))
    except DATABASE_ERRORS as exc:
        _unrecorded(services)[row.id] = (row, event, outcome)
        log.warning(
            "delivery %s but its outcome cannot be written yet (%s); retrying",
            outcome.state,
            type(exc).__name__,
        )
        raise RetryLater(DB_RETRY) from exc
    _unrecorded(services).pop(row.id, None)
    await _hand_over(services, notices)


async def _hand_over(services: Services, delivery_ids: list[int]) -> None:
    """Queue the fallback notices just committed; the sweep covers a failed hand-over."""
    if not delivery_ids or services.queue is None:
        return
    try:
        await services.queue.enqueue_many([JobRequest(DELIVER_JOB, i) for i in delivery_ids])
    except QueueUnavailableError:
        log.warning("queue unavailable: fallback notices %s left for the sweep", delivery_ids)


async def _attempt(services: Services, row: Delivery, event: Event) -> Outcome:
    url, skip_reason = await resolve_url(services, row, event)
    if url is None:
        return Outcome(state=DeliveryState.SKIPPED, error=skip_reason)
    result = await transport.send(
        url,
        title=row.title or "",
        body=row.body or "",
        timeout=services.settings.delivery_timeout,
        metadata={"correlation_id": event.correlation_id, "event_id": str(event.id)},
        body_format="text" if row.target_kind in ("client", "mailto", "mailtos") else "markdown",
    )
    if result.ok:
        return Outcome(state=DeliveryState.SENT, error=None)
    if result.permanent:
        return Outcome(state=DeliveryState.DEAD, error=result.error)
    retry_at = next_retry(
        attempts=row.attempts,
        schedule=services.settings.delivery_retry_schedule,
        now=services.clock(),
        rng=random.Random(),  # noqa: S311 - jitter
    )
    if retry_at is None:
        return Outcome(
            state=DeliveryState.DEAD, error=f"gave up after {row.attempts} attempts: {result.error}"
        )
    return Outcome(state=DeliveryState.FAILED, error=result.error, next_attempt_at=retry_at)


def health_counted(outcomes: Sequence[tuple[str, str]]) -> list[bool]:
    """Which recorded (target, state) outcomes, in order, the target's health must count (pure).

    A success right after a success of the same target changes nothing (the run of
    failures is already ended), so a batch of successes to one target counts one; a
    failure always counts; a skip never touches health.
    """
    last: dict[str, str] = {}
    counted: list[bool] = []
    for target, state in outcomes:
        if state == DeliveryState.SENT:
            counted.append(last.get(target) != DeliveryState.SENT)
        else:
            counted.append(state in fallbacks.FAILED_STATES)
        if state == DeliveryState.SENT or state in fallbacks.FAILED_STATES:
            last[target] = state
    return counted


_Unit = tuple[Delivery, Event, Outcome]


async def record_outcomes(services: Services, units: list[_Unit]) -> list[list[int]]:
    """Write outcomes, the targets' health and their notices in one transaction.

    Return, per unit, the ids of new notices to hand to the queue after the commit.
    """
    now = services.clock()
    records = [
        deliveries.OutcomeRecord(
            delivery_id=row.id,
            attempt=row.attempts,
            started_at=row.claimed_at or now,
            state=outcome.state,
            error=outcome.error,
            next_attempt_at=outcome.next_attempt_at,
            finished_at=outcome.finished_at or now,
        )
        for row, _event, outcome in units
    ]
    notices: list[list[int]] = [[] for _ in units]
    async with services.sessions.begin() as session:
        recorded = await deliveries.record_outcomes(session, outcomes=records, now=now)
        if services.rules_holder is None:
            # A process without rules cannot know a fallback.
            return notices
        # A row no longer `sending` was written by an earlier run of its job (counted and
        # told then).
        fresh = [i for i, (row, _e, _o) in enumerate(units) if row.id in recorded]
        counted = health_counted([(units[i][0].target_name, units[i][2].state) for i in fresh])
        for i, count in zip(fresh, counted, strict=True):
            if not count:
                continue
            row, event, outcome = units[i]
            notices[i] = await fallbacks.after_outcome(
                session,
                row=row,
                event=event,
                state=outcome.state,
                error=outcome.error,
                rules=services.rules.current,
                renderer=services.rules.renderer,
                now=now,
            )
    return notices


MAX_BATCH = 100  # rows per claim or record transaction (an IN list of this many ids)


@dataclass
class _Batches:
    loop: asyncio.AbstractEventLoop
    claims: GroupCommit[int, tuple[Delivery, Event | None] | None]
    records: GroupCommit[_Unit, list[int]]


def _batches(services: Services) -> _Batches:
    """This process's claim and record batches (made on first use, on the running loop)."""
    loop = asyncio.get_running_loop()
    found = services.extras.get("delivery_batches")
    if isinstance(found, _Batches) and found.loop is loop:
        return found

    async def claim(ids: list[int]) -> list[tuple[Delivery, Event | None] | None]:
        return await claim_deliveries(services, ids)

    async def record(units: list[_Unit]) -> list[list[int]]:
        return await record_outcomes(services, units)

    made = _Batches(
        loop=loop,
        claims=GroupCommit(claim, max_batch=MAX_BATCH),
        records=GroupCommit(record, max_batch=MAX_BATCH, split_on=ROW_REFUSED),
    )
    services.extras["delivery_batches"] = made
    return made
