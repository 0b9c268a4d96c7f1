"""`process_event(ctx, event_id)`: take one stored event through the pipeline.

claim (lease) -> enrich through the Partner API (network, no transaction open) ->
one transaction: snapshots, status change, claim verdict, delivery rows, `processed` mark ->
hand the new deliveries to the queue.

Each run claims the event with a lease (a conditional update), so two runs of the same
event never overlap even when a sweep re-enqueues it while it runs. Everything a run writes
lands in one transaction with the `processed` mark: a crash part-way leaves the event
unprocessed and the next run starts over cleanly. When the Partner API is down the event is
retried with backoff until ENRICH_MAX_WAIT after its receipt, then routed with what its
payload says, marked `not_enriched`, and re-enriched later by `reenrich_event`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import or_, update

from receiver.db.errors import database_unavailable
from receiver.db.tables import Event
from receiver.jobs.queue import JobContext, JobRequest, QueueUnavailableError, RetryLater
from receiver.jobs.relay import DELIVER
from receiver.logs import bind_event
from receiver.pipeline.deliver import DATABASE_ERRORS, DB_RETRY, deliver
from receiver.pipeline.enrich import (
    Enrichment,
    EnrichmentUnavailableError,
    enrich,
    give_up_at,
    judge_claim,
    retry_delay,
)
from receiver.pipeline.route import (
    is_permission_event,
    known_client,
    load_snapshots,
    revive_client_deliveries,
    route,
    routing_input,
)
from receiver.pipeline.snapshots import ChannelUpdate, store_channel, store_client
from receiver.services import Services
from receiver.vocabulary import CLIENT_EVENTS

log = logging.getLogger("receiver.jobs.process")

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 25  # a poison event stops here, visible as `failed`, instead of looping
REENRICH_WINDOW = timedelta(hours=24)
REENRICH_EVERY = timedelta(minutes=5)


def _held_leases(services: Services) -> dict[int, datetime]:
    """Leases this process holds: a retry here may take its own lease back at once."""
    found = services.extras.setdefault("event_leases", {})
    assert isinstance(found, dict)
    return found


async def claim_event(services: Services, event_id: int) -> Event | None:
    """Take the lease on an unprocessed event; None when it is done or held by another run."""
    now = services.clock()
    mine = _held_leases(services).get(event_id)
    free = or_(Event.lease_until.is_(None), Event.lease_until < now)
    if mine is not None:  # a retry after this process could not release its own lease
        free = or_(free, Event.lease_until == mine)
    lease_until = now + LEASE
    async with services.sessions.begin() as session:
        result = await session.execute(
            update(Event)
            .where(Event.id == event_id, Event.state == "received", free)
            .values(lease_until=lease_until, attempts=Event.attempts + 1)
            .returning(Event)
        )
        event = result.scalar_one_or_none()
    if event is not None:
        _held_leases(services)[event_id] = lease_until
    return event


async def release_event(services: Services, event: Event, **values: Any) -> None:
    """Give the lease back (with `values`); if the database is down, the lease stays ours."""
    try:
        async with services.sessions.begin() as session:
            await session.execute(
                update(Event).where(Event.id == event.id).values(lease_until=None, **values)
            )
    except DATABASE_ERRORS as exc:
        log.warning("could not release event %d (%s)", event.id, type(exc).__name__)
        return
    _held_leases(services).pop(event.id, None)


async def process_event(ctx: JobContext, event_id: int) -> None:
    services: Services = ctx["services"]
    try:
        event = await claim_event(services, event_id)
    except DATABASE_ERRORS as exc:
        log.warning(
            "cannot claim event %d: database unavailable (%s)", event_id, type(exc).__name__
        )
        raise RetryLater(DB_RETRY) from exc
    if event is None:
        services.metrics.jobs.labels(function="process_event", outcome="skipped").inc()
        return
    with bind_event(correlation_id=event.correlation_id, event_id=event.id):
        try:
            await _process(services, event)
            _held_leases(services).pop(event.id, None)
        except RetryLater:
            services.metrics.jobs.labels(function="process_event", outcome="retry").inc()
            raise
        except asyncio.CancelledError:
            # Shutdown or a lost queue connection: let the next run start at once, not after
            # the lease. Nothing was committed (the work is one transaction).
            await asyncio.shield(release_event(services, event))
            raise
        except Exception as exc:
            if database_unavailable(exc):
                log.warning(
                    "database unavailable while processing (%s); retrying", type(exc).__name__
                )
                await release_event(services, event)
                services.metrics.jobs.labels(function="process_event", outcome="retry").inc()
                raise RetryLater(max(DB_RETRY, retry_delay(event.attempts))) from exc
            # Anything else (a refused value included) counts against the attempt cap.
            failed = event.attempts >= MAX_ATTEMPTS
            log.exception(
                "processing failed (attempt %d)%s", event.attempts, ", giving up" if failed else ""
            )
            await release_event(
                services,
                event,
                state="failed" if failed else "received",
                last_error=f"{type(exc).__name__}: {exc}"[:1000],
            )
            services.metrics.jobs.labels(function="process_event", outcome="error").inc()
            if not failed:
                raise RetryLater(retry_delay(event.attempts)) from exc


async def _enrich_or_wait(services: Services, event: Event) -> Enrichment:
    async with services.sessions() as session:
        known = await known_client(session, event.client_id)
    partner = services.partner
    try:
        result = await enrich(partner, event, known_client=known)
    except EnrichmentUnavailableError as exc:
        now = services.clock()
        deadline = give_up_at(event.received_at, services.settings.enrich_max_wait)
        if now < deadline:
            delay = min(retry_delay(event.attempts), (deadline - now).total_seconds() + 0.1)
            async with services.sessions.begin() as session:
                await session.execute(
                    update(Event)
                    .where(Event.id == event.id)
                    .values(
                        lease_until=None,
                        next_attempt_at=now + timedelta(seconds=delay),
                        enrichment_error=str(exc),
                    )
                )
            services.metrics.enrichment.labels(outcome="retry").inc()
            log.warning("Partner API unavailable, retrying in %.1fs: %s", delay, exc)
            raise RetryLater(delay) from exc
        services.metrics.enrichment.labels(outcome="gave_up").inc()
        log.warning(
            "Partner API still unavailable after %ss: routing without enrichment",
            services.settings.enrich_max_wait,
        )
        return Enrichment(state="not_enriched", error=str(exc))
    services.metrics.enrichment.labels(outcome=result.state).inc()
    return result


def payload_data(event: Event) -> dict[str, Any] | None:
    if event.source != "webhook" or not event.raw_body:
        return None
    try:
        body = orjson.loads(event.raw_body)
    except orjson.JSONDecodeError:
        return None
    # Only a `data` object is a channel (or client) object: at the top level, `id` is the
    # delivery's own id, not a channel's.
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None


async def _process(services: Services, event: Event) -> None:
    enrichment = await _enrich_or_wait(services, event)
    now = services.clock()
    loaded = services.rules.loaded
    async with services.sessions.begin() as session:
        update_ = await apply_enrichment(session, event, enrichment, now=now)
        verdict = (
            judge_claim(claimed_client=event.client_id, enrichment=enrichment)
            if is_permission_event(event)
            else None
        )
        channel_id = await resolve_channel_id(session, event, update_)
        channel, client = await load_snapshots(
            session, channel_id=channel_id, client_id=event.client_id
        )
        created = await route(
            session,
            routing_input(
                event,
                channel=channel,
                client=client,
                change=update_.change,
                enriched=enrichment.state == "enriched",
                claim=verdict.claim if verdict else event.claim,
                claim_reason=verdict.reason if verdict else event.claim_reason,
            ),
            rules=loaded.rules,
            renderer=loaded.renderer,
            now=now,
            status_why=update_.change.why if update_.change else None,
            client_cap=services.settings.client_max_per_hour,
        )
        await session.execute(
            update(Event)
            .where(Event.id == event.id)
            .values(
                state="processed",
                processed_at=now,
                lease_until=None,
                next_attempt_at=None,
                enrichment=enrichment.state,
                enrichment_error=enrichment.error,
                claim=verdict.claim if verdict else event.claim,
                claim_reason=verdict.reason if verdict else event.claim_reason,
                rules_version=loaded.rules.source.digest[:64],
            )
        )
    await after_commit(services, created, change=update_)
    if verdict is not None:
        services.metrics.permission_claims.labels(claim=verdict.claim).inc()
    log.info(
        "event processed",
        extra={
            "event_type": event.event_type,
            "enrichment": enrichment.state,
            "claim": verdict.claim if verdict else None,
            "status_change": f"{update_.change.from_status}->{update_.change.to_status}"
            if update_.change
            else None,
            "deliveries": len(created),
        },
    )
    services.metrics.jobs.labels(function="process_event", outcome="processed").inc()


async def apply_enrichment(
    session: Any, event: Event, enrichment: Enrichment, *, now: datetime
) -> ChannelUpdate:
    """Store what enrichment (or, failing it, the payload) says about client and channel.

    The event object also takes this run's enrichment state and error (the row gets them with
    the `processed` mark, in the same transaction), so routing can tell a message's reader
    why Partner API details are missing.
    """
    event.enrichment = enrichment.state
    event.enrichment_error = enrichment.error
    data = payload_data(event)
    if enrichment.client is not None:
        await store_client(session, enrichment.client, now=now, source="partner_api")
    elif data is not None and event.verification != "none":
        embedded = data if event.event_type in CLIENT_EVENTS else data.get("client")
        if isinstance(embedded, dict):
            await store_client(session, embedded, now=now, source="payload")
    if enrichment.channel is not None:
        return await store_channel(
            session, enrichment.channel, event_id=event.id, now=now, enriched=True
        )
    if (
        data is not None
        and event.event_type not in CLIENT_EVENTS
        and enrichment.state != "not_found"
    ):
        return await store_channel(session, data, event_id=event.id, now=now, enriched=False)
    return ChannelUpdate(channel=None, change=None)


async def resolve_channel_id(session: Any, event: Event, update_: ChannelUpdate) -> str | None:
    """The event's channel: named by it, or found through enrichment (e.g. by phone number).

    A channel found by phone number is written back onto the event, so listings, the admin
    API and later runs see it.
    """
    if event.channel_id is not None:
        return event.channel_id
    if update_.channel is None or event.event_type in CLIENT_EVENTS:
        return None
    await session.execute(
        update(Event).where(Event.id == event.id).values(channel_id=update_.channel.id)
    )
    return update_.channel.id


async def after_commit(
    services: Services, created: list[tuple[int, str, str]], *, change: ChannelUpdate
) -> None:
    if change.change is not None:
        services.metrics.status_changes.labels(
            from_status=change.change.from_status or "none", to_status=change.change.to_status
        ).inc()
    for _id, state, kind in created:
        if state in ("skipped", "throttled", "held"):
            services.metrics.deliveries.labels(target_kind=kind, outcome=state).inc()
    pending = [delivery_id for delivery_id, state, _kind in created if state == "pending"]
    if not pending:
        return
    # First attempts run here, concurrently, one queue hop sooner than a job would; each
    # claims its row like any `deliver` job. Retries and failures go to the queue, and the
    # sweep is the backstop if this process dies mid-send (the claim's lease expires).
    ctx: JobContext = {"services": services}
    await asyncio.gather(*(_first_attempt(services, ctx, i) for i in pending))


async def _first_attempt(services: Services, ctx: JobContext, delivery_id: int) -> None:
    # Each delivery hands its own retry to the queue as soon as it fails, so a target that
    # hangs does not delay another target's retry schedule.
    try:
        await deliver(ctx, delivery_id)
        return
    except RetryLater as retry:
        job = JobRequest(DELIVER, delivery_id, defer=retry.defer)
    except Exception as exc:  # the job will run it; the sweep is the backstop
        log.error("first delivery attempt failed: %s", type(exc).__name__, exc_info=exc)
        job = JobRequest(DELIVER, delivery_id, defer=1.0)
    try:
        await services.require_queue().enqueue_many([job])
    except QueueUnavailableError:
        log.warning("queue unavailable: delivery %d left for the sweep", delivery_id)


async def reenrich_event(ctx: JobContext, event_id: int) -> None:
    """Enrich an event that was routed without the Partner API, now that it may be back.

    Claimed by pushing `next_attempt_at` forward (one run per window). On success the
    snapshots are stored, a status change recorded, and routing re-run: delivery rows are
    unique per (event, rule, target), so only what the new facts add is sent.
    """
    services: Services = ctx["services"]
    now = services.clock()
    async with services.sessions.begin() as session:
        claimed = await session.execute(
            update(Event)
            .where(
                Event.id == event_id,
                Event.state == "processed",
                Event.enrichment == "not_enriched",
                or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= now),
            )
            .values(next_attempt_at=now + REENRICH_EVERY)
            .returning(Event)
        )
        event = claimed.scalar_one_or_none()
    if event is None:
        return
    with bind_event(correlation_id=event.correlation_id, event_id=event.id):
        try:
            async with services.sessions() as session:
                known = await known_client(session, event.client_id)
            enrichment = await enrich(services.partner, event, known_client=known)
        except EnrichmentUnavailableError as exc:
            log.info("re-enrichment: Partner API still unavailable: %s", exc)
            return
        if enrichment.state != "enriched":
            return
        loaded = services.rules.loaded
        # A permission claim the Partner API could not check then is judged now, exactly as
        # processing would have judged it.
        verdict = (
            judge_claim(claimed_client=event.client_id, enrichment=enrichment)
            if is_permission_event(event)
            else None
        )
        async with services.sessions.begin() as session:
            update_ = await apply_enrichment(session, event, enrichment, now=now)
            channel_id = await resolve_channel_id(session, event, update_)
            channel, client = await load_snapshots(
                session, channel_id=channel_id, client_id=event.client_id
            )
            item = routing_input(
                event,
                channel=channel,
                client=client,
                change=update_.change,
                enriched=True,
                claim=verdict.claim if verdict else event.claim,
                claim_reason=verdict.reason if verdict else event.claim_reason,
            )
            created = await route(
                session,
                item,
                rules=loaded.rules,
                renderer=loaded.renderer,
                now=now,
                status_why=update_.change.why if update_.change else None,
                client_cap=services.settings.client_max_per_hour,
            )
            await session.execute(
                update(Event)
                .where(Event.id == event.id)
                .values(
                    enrichment="enriched_late",
                    enrichment_error=None,
                    next_attempt_at=None,
                    claim=item.claim,
                    claim_reason=verdict.reason if verdict else event.claim_reason,
                )
            )
            # A client message skipped only because nobody could confirm the owner (or the
            # claim) then: the Partner API has now, so it goes out after all, within the cap.
            # An unauthenticated webhook stays untrusted: enrichment cannot vouch for it.
            created += await revive_client_deliveries(
                session,
                item,
                rules=loaded.rules,
                renderer=loaded.renderer,
                cap=services.settings.client_max_per_hour,
                now=now,
            )
        if verdict is not None:
            services.metrics.permission_claims.labels(claim=verdict.claim).inc()
        services.metrics.enrichment.labels(outcome="enriched_late").inc()
        log.info("event enriched late", extra={"deliveries": len(created)})
        await after_commit(services, created, change=update_)
