"""`deliver(ctx, delivery_id)`: send one notification, at most once per claim.

The row is claimed before sending (a conditional update to `sending`, only when it is due,
or when an earlier claim is older than the lease: the worker holding it died) and marked
after. A crash between the send and the mark can therefore send one message twice, never
more, and two workers never send the same row at the same time. This is the one place that
catches a send's failure and writes it onto the row (attempts, last error, next attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from receiver.db.errors import DATABASE_ERRORS
from receiver.db.store import channels, deliveries
from receiver.db.tables import Delivery, Event
from receiver.logs import bind_event
from receiver.notify import apprise as transport
from receiver.pipeline import fallbacks
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


def next_retry(
    *, attempts: int, schedule: list[float], now: datetime, rng: random.Random
) -> datetime | None:
    """When to try again after `attempts` failed tries; None when the schedule is used up (pure)."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    # +-20 % jitter so a recovering target is not hit by every delivery at the same second.
    return now + timedelta(seconds=base * rng.uniform(0.8, 1.2))


async def claim_delivery(
    services: Services, delivery_id: int
) -> tuple[Delivery, Event | None] | None:
    now = services.clock()
    # Longer than any single send (DELIVERY_TIMEOUT is at most 60 s): a `sending` row older
    # than this belongs to a worker that died mid-send, and is claimed again.
    stale_before = now - timedelta(seconds=services.settings.send_lease)
    async with services.sessions.begin() as session:
        return await deliveries.claim_delivery(
            session, delivery_id=delivery_id, now=now, stale_before=stale_before
        )


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
    unit = asyncio.ensure_future(_deliver(services, delivery_id))
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
    event = found
    with bind_event(correlation_id=event.correlation_id, event_id=event.id, delivery_id=row.id):
        outcome = await _attempt(services, row, event)
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
        notices = await _record(services, row, event, outcome)
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


async def _record(services: Services, row: Delivery, event: Event, outcome: Outcome) -> list[int]:
    """Write the outcome and, in the same transaction, the target's health and notices."""
    now = services.clock()
    async with services.sessions.begin() as session:
        recorded = await deliveries.record_outcome(
            session,
            delivery_id=row.id,
            attempt=row.attempts,
            started_at=row.claimed_at or now,
            state=outcome.state,
            error=outcome.error,
            next_attempt_at=outcome.next_attempt_at,
            now=now,
        )
        if not recorded or services.rules_holder is None:
            # Written by an earlier run of this job (counted and told then), or a process
            # without rules (it cannot know a fallback).
            return []
        return await fallbacks.after_outcome(
            session,
            row=row,
            event=event,
            state=outcome.state,
            error=outcome.error,
            rules=services.rules.current,
            renderer=services.rules.renderer,
            now=now,
        )
