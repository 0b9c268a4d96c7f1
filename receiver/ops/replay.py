"""Replay: route stored events again under the rules running now.

Each event goes through the pipeline step (`receiver.pipeline.step.take_step`) without an
enrichment, so it is routed from what is stored: the channel and client snapshots (the
latest ones, not as they were then), the status change the event caused (its
`status_changes` row), and the event's own body and verdicts.

- dry run (`RouteMode.PLAN`): per event, what would be sent now (rule, target, rendered
  title, state) next to what was sent then (the delivery rows), writing nothing.
- plain (`RouteMode.RECORD`): only (rule, target) pairs the event has no delivery row for,
  in any round, get a row (round 0, the normal unique key). What was sent is never sent
  again, so a plain replay after a rule change sends exactly what the new rules add.
- force (`RouteMode.FORCE`): every match gets a row in a new round (`replay_round` = max +
  1, `forced` true), so each is sent exactly once more; the rows are the record. Throttles
  do not apply to a forced resend (it was asked for by name); the `client` target's safety
  checks still do.

New pending rows are handed to the queue after their commit, like the pipeline's own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from receiver.db.store import deliveries, events
from receiver.jobs.handoff import count_routed
from receiver.logs import bind_event
from receiver.ops.replay_report import (
    EventReplay,
    PlannedDelivery,
    RecordedDelivery,
    ReplayError,
    ReplayReport,
    recorded,
)
from receiver.ops.retry import enqueue_deliveries
from receiver.pipeline.route import RouteMode
from receiver.pipeline.step import take_step
from receiver.routing.rules_state import LoadedRules
from receiver.services import Services
from receiver.vocabulary import DeliveryState, EventState

__all__ = [
    "EventReplay",
    "PlannedDelivery",
    "RecordedDelivery",
    "ReplayError",
    "ReplayReport",
    "replay",
]

log = logging.getLogger("receiver.ops.replay")

MAX_EVENTS = 10_000


async def replay(
    services: Services,
    *,
    event_ids: Sequence[int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    channel: str | None = None,
    event_type: str | None = None,
    dry_run: bool,
    force: bool,
) -> ReplayReport:
    """Route the selected events again under the current rules (see the module docstring)."""
    if all(v is None for v in (event_ids, since, until, channel, event_type)):
        raise ReplayError("name the events to replay: ids, a time range, a channel or a type")
    loaded = services.rules.loaded
    report = ReplayReport(dry_run=dry_run, force=force, rules_digest=loaded.rules.source.digest)
    async with services.sessions() as session:
        ids = await events.select_event_ids(
            session,
            event_ids=event_ids,
            since=since,
            until=until,
            channel=channel,
            event_type=event_type,
            limit=MAX_EVENTS + 1,
        )
    if len(ids) > MAX_EVENTS:
        raise ReplayError(
            f"more than {MAX_EVENTS} events selected: narrow the range and replay in parts"
        )
    if event_ids is not None:
        found = set(ids)
        report.events.extend(
            EventReplay(event_id=i, outcome="not_found", note="no such event (or filtered out)")
            for i in dict.fromkeys(event_ids)
            if i not in found
        )
    mode = RouteMode.PLAN if dry_run else RouteMode.FORCE if force else RouteMode.RECORD
    pending: list[int] = []
    for event_id in ids:
        item, new_pending = await _replay_one(services, event_id, loaded=loaded, mode=mode)
        report.events.append(item)
        pending.extend(new_pending)
    report.events.sort(key=lambda e: e.event_id)
    if pending:
        report.enqueued = await enqueue_deliveries(services, pending)
    return report


async def _replay_one(
    services: Services, event_id: int, *, loaded: LoadedRules, mode: RouteMode
) -> tuple[EventReplay, list[int]]:
    # One transaction per event: a long replay never holds SQLite's write lock for long, and
    # a failure part-way leaves every event either fully replayed or untouched.
    planning = mode is RouteMode.PLAN
    context = services.sessions() if planning else services.sessions.begin()
    async with context as session:
        event = await events.get_event(session, event_id=event_id)
        if event is None:
            return EventReplay(event_id=event_id, outcome="not_found"), []
        report = EventReplay(
            event_id=event.id,
            outcome="planned" if planning else "replayed",
            event_type=event.event_type,
            channel_id=event.channel_id,
            correlation_id=event.correlation_id,
            external_id=event.external_id,
            dedup_key=event.dedup_key,
        )
        if event.state != EventState.PROCESSED:
            report.outcome = "skipped"
            report.note = (
                "not processed yet: the pipeline routes it"
                if event.state == EventState.RECEIVED
                else f"processing {event.state}: {event.last_error or 'no error recorded'}"
            )
            return report, []
        if event.raw_body is None and event.source == "webhook":
            report.note = "raw body purged by retention: rules on event.data see nothing"
        report.then = [
            recorded(row)
            for row in await deliveries.deliveries_of_event(session, event_id=event.id)
        ]
        with bind_event(correlation_id=event.correlation_id, event_id=event.id):
            step = await take_step(
                session,
                event,
                enrichment=None,
                rules=loaded.rules,
                renderer=loaded.renderer,
                now=services.clock(),
                client_cap=services.settings.client_max_per_hour,
                mode=mode,
                # Nobody hands the rows over without a queue: leave them for the sweep.
                queued=services.queue is not None,
            )
            routed = step.routed
            if routed.silenced is not None:
                report.note = routed.silenced
            else:
                report.replay_round = routed.replay_round
            report.now = routed.planned
            if not planning:
                log.info(
                    "event replayed%s",
                    " (forced)" if mode is RouteMode.FORCE else "",
                    extra={
                        "replay_round": report.replay_round,
                        "forced": mode is RouteMode.FORCE,
                        "deliveries": len(report.created),
                        "rules_version": loaded.rules.source.digest[:12],
                    },
                )
    # Counted as the pipeline counts its own rows: skipped/throttled now, the rest when sent.
    count_routed(services, routed.created)
    pending = [i for i, state, _kind in routed.created if state == DeliveryState.PENDING]
    return report, pending
