"""`process_event(ctx, event_id)`: take one stored event through the pipeline.

claim (lease) -> enrich through the Partner API (network, no transaction open) ->
one transaction: the pipeline step (snapshots, status change, claim verdict, delivery rows,
`receiver.pipeline.step`) and the `processed` mark -> hand the new deliveries on
(`receiver.jobs.handoff`).

Each run claims the event with a lease (a conditional update), so two runs of the same
event never overlap even when a sweep re-enqueues it while it runs; the claims of the jobs
that start at the same moment share one statement and one transaction. Everything a run writes
lands in one transaction with the `processed` mark: a crash part-way leaves the event
unprocessed and the next run starts over cleanly. When the Partner API is down the event is
retried with backoff until ENRICH_MAX_WAIT after its receipt, then routed with what its
payload says, marked `not_enriched`, and re-enriched later by `reenrich_event`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from receiver.db.errors import DATABASE_ERRORS, database_unavailable
from receiver.db.store import events
from receiver.db.tables import Event
from receiver.jobs.handoff import after_commit
from receiver.logs import bind_event
from receiver.pipeline.deliver import DB_RETRY, MAX_BATCH
from receiver.pipeline.enrich import (
    Enrichment,
    EnrichmentUnavailableError,
    enrich,
    give_up_at,
    retry_delay,
)
from receiver.pipeline.group_commit import GroupCommit
from receiver.pipeline.step import take_step
from receiver.queue import JobContext, RetryLater
from receiver.services import Services
from receiver.vocabulary import EventState

log = logging.getLogger("receiver.jobs.process")

MAX_ATTEMPTS = 25  # a poison event stops here, visible as `failed`, instead of looping
CLAIM_LINGER = 0.005  # seconds a busy worker lets event claims gather into one statement


def _running(services: Services) -> int:
    """How many `process_event` runs this process has in flight."""
    found = services.extras.get("event_runs", 0)
    assert isinstance(found, int)
    return found


def _held_leases(services: Services) -> dict[int, set[datetime]]:
    """Leases this process holds or may hold: a retry here may take its own back at once.

    More than one per event when a claim's commit went unanswered (the database went away
    mid-commit): it may have landed, and then only this process can know the lease is ours.
    """
    found = services.extras.setdefault("event_leases", {})
    assert isinstance(found, dict)
    return found


async def claim_event(services: Services, event_id: int) -> tuple[Event, bool] | None:
    """Take the lease on an unprocessed event; None when it is done or held by another run.

    With the event comes whether its client is already stored. The claims of the jobs that
    ask at the same moment share one transaction (`_claims`); a retry whose earlier claim's
    commit went unanswered claims alone, as only it may take its own lease back.
    """
    own = _held_leases(services).get(event_id)
    if own:
        return (await _claim(services, [event_id], own_leases=own))[0]
    return await _claims(services).submit(event_id)


async def _claim(
    services: Services, event_ids: list[int], *, own_leases: set[datetime] | None = None
) -> list[tuple[Event, bool] | None]:
    """Lease `event_ids` in one transaction; an id asked twice is leased to its first asker."""
    now = services.clock()
    lease_until = now + timedelta(seconds=services.settings.event_lease)
    held = _held_leases(services)
    try:
        async with services.sessions.begin() as session:
            claimed = await events.claim_events(
                session,
                event_ids=event_ids,
                now=now,
                lease_until=lease_until,
                own_leases=own_leases or (),
            )
    except DATABASE_ERRORS:
        for event_id in event_ids:
            held.setdefault(event_id, set()).add(lease_until)  # the commit may have landed
        raise
    answers: list[tuple[Event, bool] | None] = []
    for event_id in event_ids:
        answers.append(claimed.pop(event_id, None))
        if answers[-1] is not None:
            held[event_id] = {lease_until}
    return answers


@dataclass
class _Claims:
    loop: asyncio.AbstractEventLoop
    batch: GroupCommit[int, tuple[Event, bool] | None]


def _claims(services: Services) -> GroupCommit[int, tuple[Event, bool] | None]:
    """This process's event-claim batch (made on first use, on the running loop)."""
    loop = asyncio.get_running_loop()
    found = services.extras.get("event_claims")
    if isinstance(found, _Claims) and found.loop is loop:
        return found.batch

    async def claim(event_ids: list[int]) -> list[tuple[Event, bool] | None]:
        return await _claim(services, event_ids)

    def linger() -> float:
        # Other runs in flight: this process is busy and more claims follow within a few
        # milliseconds (arq starts a poll's jobs one after another). A lone run claims at once.
        return CLAIM_LINGER if _running(services) > 1 else 0.0

    made = _Claims(loop=loop, batch=GroupCommit(claim, max_batch=MAX_BATCH, linger=linger))
    services.extras["event_claims"] = made
    return made.batch


async def release_event(services: Services, event: Event, **values: Any) -> None:
    """Give the lease back (with `values`); if the database is down, the lease stays ours."""
    try:
        async with services.sessions.begin() as session:
            await events.update_event(
                session, event_id=event.id, values={"lease_until": None, **values}
            )
    except DATABASE_ERRORS as exc:
        log.warning("could not release event %d (%s)", event.id, type(exc).__name__)
        return
    _held_leases(services).pop(event.id, None)


async def process_event(ctx: JobContext, event_id: int) -> None:
    services: Services = ctx["services"]
    services.extras["event_runs"] = _running(services) + 1
    try:
        await _run(services, event_id)
    finally:
        services.extras["event_runs"] = _running(services) - 1


async def _run(services: Services, event_id: int) -> None:
    try:
        claimed = await claim_event(services, event_id)
    except DATABASE_ERRORS as exc:
        log.warning(
            "cannot claim event %d: database unavailable (%s)", event_id, type(exc).__name__
        )
        raise RetryLater(DB_RETRY) from exc
    if claimed is None:
        services.metrics.jobs.labels(function="process_event", outcome="skipped").inc()
        return
    event, client_known = claimed
    with bind_event(correlation_id=event.correlation_id, event_id=event.id):
        try:
            await _process(services, event, client_known=client_known)
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
                state=EventState.FAILED if failed else EventState.RECEIVED,
                last_error=f"{type(exc).__name__}: {exc}"[:1000],
            )
            services.metrics.jobs.labels(function="process_event", outcome="error").inc()
            if not failed:
                raise RetryLater(retry_delay(event.attempts)) from exc


async def _enrich_or_wait(services: Services, event: Event, *, client_known: bool) -> Enrichment:
    partner = services.partner
    try:
        result = await enrich(partner, event, known_client=client_known)
    except EnrichmentUnavailableError as exc:
        now = services.clock()
        deadline = give_up_at(event.received_at, services.settings.enrich_max_wait)
        if now < deadline:
            delay = min(retry_delay(event.attempts), (deadline - now).total_seconds() + 0.1)
            async with services.sessions.begin() as session:
                await events.update_event(
                    session,
                    event_id=event.id,
                    values={
                        "lease_until": None,
                        "next_attempt_at": now + timedelta(seconds=delay),
                        "enrichment_error": str(exc),
                    },
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


async def _process(services: Services, event: Event, *, client_known: bool) -> None:
    enrichment = await _enrich_or_wait(services, event, client_known=client_known)
    now = services.clock()
    loaded = services.rules.loaded
    async with services.sessions.begin() as session:
        step = await take_step(
            session,
            event,
            enrichment=enrichment,
            rules=loaded.rules,
            renderer=loaded.renderer,
            now=now,
            client_cap=services.settings.client_max_per_hour,
            # Claimed in state `received`: never routed (that commits with `processed`).
            first_routing=True,
            # First attempts are sent by this job right after the commit (handoff.py).
            claim=True,
        )
        await events.update_event(
            session,
            event_id=event.id,
            values={
                "state": EventState.PROCESSED,
                "processed_at": now,
                "lease_until": None,
                "next_attempt_at": None,
                "enrichment": enrichment.state,
                "enrichment_error": enrichment.error,
                "claim": step.claim,
                "claim_reason": step.claim_reason,
                "rules_version": loaded.rules.source.digest[:64],
            },
        )
    created = step.routed.created
    await after_commit(
        services, created, change=step.update, claimed=step.routed.claimed, event=event
    )
    verdict = step.verdict
    if verdict is not None:
        services.metrics.permission_claims.labels(claim=verdict.claim).inc()
    change = step.update.change
    log.info(
        "event processed",
        extra={
            "event_type": event.event_type,
            "enrichment": enrichment.state,
            "claim": verdict.claim if verdict else None,
            "status_change": f"{change.from_status}->{change.to_status}" if change else None,
            "deliveries": len(created),
        },
    )
    services.metrics.jobs.labels(function="process_event", outcome="processed").inc()
