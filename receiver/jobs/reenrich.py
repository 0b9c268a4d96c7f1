"""`reenrich_event(ctx, event_id)`: enrich an event routed without the Partner API, later.

Claimed by pushing `next_attempt_at` forward (one run per REENRICH_EVERY). On success the
pipeline step runs again with the Partner API's answer: snapshots stored, a status change
recorded, a permission claim judged, and routing re-run; delivery rows are unique per
(event, rule, target), so only what the new facts add is sent.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from receiver.db.store import events
from receiver.jobs.handoff import after_commit
from receiver.logs import bind_event
from receiver.pipeline.enrich import EnrichmentUnavailableError, enrich
from receiver.pipeline.route import known_client, revive_client_deliveries
from receiver.pipeline.step import take_step
from receiver.queue import JobContext
from receiver.services import Services

log = logging.getLogger("receiver.jobs.process")

REENRICH_EVERY = timedelta(minutes=5)


async def reenrich_event(ctx: JobContext, event_id: int) -> None:
    services: Services = ctx["services"]
    now = services.clock()
    async with services.sessions.begin() as session:
        event = await events.claim_for_reenrichment(
            session, event_id=event_id, now=now, next_try=now + REENRICH_EVERY
        )
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
        cap = services.settings.client_max_per_hour
        async with services.sessions.begin() as session:
            # A permission claim the Partner API could not check then is judged now, exactly
            # as processing would have judged it.
            step = await take_step(
                session,
                event,
                enrichment=enrichment,
                rules=loaded.rules,
                renderer=loaded.renderer,
                now=now,
                client_cap=cap,
            )
            await events.update_event(
                session,
                event_id=event.id,
                values={
                    "enrichment": "enriched_late",
                    "enrichment_error": None,
                    "next_attempt_at": None,
                    "claim": step.item.claim,
                    "claim_reason": step.claim_reason,
                },
            )
            # A client message skipped only because nobody could confirm the owner (or the
            # claim) then: the Partner API has now, so it goes out after all, within the cap.
            # An unauthenticated webhook stays untrusted: enrichment cannot vouch for it.
            created = step.routed.created + await revive_client_deliveries(
                session,
                step.item,
                rules=loaded.rules,
                renderer=loaded.renderer,
                cap=cap,
                now=now,
            )
        if step.verdict is not None:
            services.metrics.permission_claims.labels(claim=step.verdict.claim).inc()
        services.metrics.enrichment.labels(outcome="enriched_late").inc()
        log.info("event enriched late", extra={"deliveries": len(created)})
        await after_commit(services, created, change=step.update)
