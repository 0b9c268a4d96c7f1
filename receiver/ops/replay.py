"""Replay: route stored events again under the rules running now.

Each event is routed as the pipeline would route it, from what is stored: the channel and
client snapshots (the latest ones, not as they were then), the status change the event
caused (its `status_changes` row), and the event's own body and verdicts.

- dry run: per event, what would be sent now (rule, target, rendered title, state) next to
  what was sent then (the delivery rows), writing nothing.
- plain: only (rule, target) pairs the event has no delivery row for, in any round, get a
  row (round 0, the normal unique key). What was sent is never sent again, so a plain
  replay after a rule change sends exactly what the new rules add.
- force: every match gets a row in a new round (`replay_round` = max + 1, `forced` true),
  so each is sent exactly once more; the rows are the record. Throttles do not apply to a
  forced resend (it was asked for by name); the `client` target's safety checks still do.

New pending rows are handed to the queue after their commit, like the pipeline's own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.tables import Delivery, Event, StatusChange, Throttle
from receiver.logs import bind_event
from receiver.messages.context import build_context
from receiver.ops.retry import enqueue_deliveries
from receiver.pipeline.route import (
    RoutingInput,
    claim_throttle,
    delivery_row,  # the row normal routing writes; replay must write the very same shape
    insert_delivery,
    load_snapshots,
    routing_input,
    silenced,
    subject_for,
)
from receiver.pipeline.rules_state import LoadedRules
from receiver.pipeline.snapshots import ObservedChange
from receiver.routing.matcher import RuleMatch, match_rules
from receiver.services import Services

log = logging.getLogger("receiver.ops.replay")

MAX_EVENTS = 10_000
ENRICHED_STATES = ("enriched", "enriched_late")


class ReplayError(Exception):
    """The replay was not started (nothing selected, or too much at once)."""


@dataclass(frozen=True)
class PlannedDelivery:
    """One (rule, target) the current rules pick for the event."""

    rule: str
    target: str
    title: str | None
    state: str  # pending | skipped | throttled: what the row would start as
    reason: str | None
    action: str  # create | exists (plain: already has a row) | resend (force)
    delivery_id: int | None = None  # the row this replay wrote


@dataclass(frozen=True)
class RecordedDelivery:
    """A delivery row the event had before this replay."""

    id: int
    rule: str
    target: str
    replay_round: int
    forced: bool
    state: str
    title: str | None
    sent_at: str | None


@dataclass
class EventReplay:
    event_id: int
    outcome: str  # planned | replayed | skipped | not_found
    event_type: str | None = None
    channel_id: str | None = None
    correlation_id: str | None = None
    external_id: str | None = None  # 360dialog's id of the webhook
    dedup_key: str | None = None
    note: str | None = None
    replay_round: int | None = None
    now: list[PlannedDelivery] = field(default_factory=list)
    then: list[RecordedDelivery] = field(default_factory=list)

    @property
    def created(self) -> list[PlannedDelivery]:
        return [p for p in self.now if p.delivery_id is not None]


@dataclass
class ReplayReport:
    dry_run: bool
    force: bool
    rules_digest: str
    events: list[EventReplay] = field(default_factory=list)
    enqueued: bool = True

    @property
    def created(self) -> int:
        return sum(len(e.created) for e in self.events)

    @property
    def would_create(self) -> int:
        return sum(1 for e in self.events for p in e.now if p.action in ("create", "resend"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "force": self.force,
            "rules_digest": self.rules_digest,
            "events_selected": len(self.events),
            "deliveries_would_create": self.would_create,
            "deliveries_created": self.created,
            "enqueued": self.enqueued,
            "events": [
                {
                    **{k: v for k, v in asdict(e).items() if k not in ("now", "then")},
                    "would_send_now": [asdict(p) for p in e.now],
                    "sent_then": [asdict(r) for r in e.then],
                }
                for e in self.events
            ],
        }

    def format(self) -> str:
        mode = "dry run" if self.dry_run else "forced replay" if self.force else "replay"
        lines = [
            f"{mode} under rules {self.rules_digest[:12]}: {len(self.events)} event(s), "
            + (
                f"{self.would_create} delivery row(s) would be created"
                if self.dry_run
                else f"{self.created} delivery row(s) created"
            )
        ]
        for item in self.events:
            head = f"event {item.event_id}"
            if item.event_type:
                head += f" {item.event_type}"
            if item.channel_id:
                head += f" (channel {item.channel_id})"
            if item.external_id:
                head += f" [360dialog id {item.external_id}]"
            if item.replay_round is not None and item.replay_round > 0:
                head += f", round {item.replay_round}"
            lines.append("")
            lines.append(f"{head}: {item.outcome}")
            if item.note:
                lines.append(f"  note: {item.note}")
            if item.outcome in ("skipped", "not_found"):
                continue
            lines.append("  now:" if item.now else "  now: no rule matches")
            for planned in item.now:
                mark = {"create": "+", "resend": "+", "exists": "="}[planned.action]
                state = planned.state + (f" ({planned.reason})" if planned.reason else "")
                row = f" -> #{planned.delivery_id}" if planned.delivery_id is not None else ""
                lines.append(
                    f"    {mark} {planned.rule} -> {planned.target}: "
                    f"{planned.title or ''!r} [{state}]{row}"
                )
            lines.append("  then:" if item.then else "  then: nothing was sent")
            for recorded in item.then:
                extra = f", round {recorded.replay_round}" if recorded.replay_round else ""
                extra += ", forced" if recorded.forced else ""
                lines.append(
                    f"    #{recorded.id} {recorded.rule} -> {recorded.target}: "
                    f"{recorded.title or ''!r} [{recorded.state}{extra}]"
                )
        if not self.dry_run and not self.enqueued:
            lines.append("")
            lines.append("new deliveries were not handed to a queue: the relay's sweep sends them")
        return "\n".join(lines)


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
    ids = await _select(
        services,
        event_ids=event_ids,
        since=since,
        until=until,
        channel=channel,
        event_type=event_type,
    )
    if event_ids is not None:
        found = set(ids)
        report.events.extend(
            EventReplay(event_id=i, outcome="not_found", note="no such event (or filtered out)")
            for i in dict.fromkeys(event_ids)
            if i not in found
        )
    pending: list[int] = []
    for event_id in ids:
        item, new_pending = await _replay_one(
            services, event_id, loaded=loaded, dry_run=dry_run, force=force
        )
        report.events.append(item)
        pending.extend(new_pending)
    report.events.sort(key=lambda e: e.event_id)
    if pending:
        report.enqueued = await enqueue_deliveries(services, pending)
    return report


async def _select(
    services: Services,
    *,
    event_ids: Sequence[int] | None,
    since: datetime | None,
    until: datetime | None,
    channel: str | None,
    event_type: str | None,
) -> list[int]:
    query = select(Event.id).order_by(Event.id).limit(MAX_EVENTS + 1)
    if event_ids is not None:
        query = query.where(Event.id.in_(list(event_ids)))
    if since is not None:
        query = query.where(Event.received_at >= since)
    if until is not None:
        query = query.where(Event.received_at < until)
    if channel is not None:
        query = query.where(Event.channel_id == channel)
    if event_type is not None:
        query = query.where(Event.event_type == event_type)
    async with services.sessions() as session:
        ids = list((await session.scalars(query)).all())
    if len(ids) > MAX_EVENTS:
        raise ReplayError(
            f"more than {MAX_EVENTS} events selected: narrow the range and replay in parts"
        )
    return ids


async def _replay_one(
    services: Services, event_id: int, *, loaded: LoadedRules, dry_run: bool, force: bool
) -> tuple[EventReplay, list[int]]:
    # One transaction per event: a long replay never holds SQLite's write lock for long, and
    # a failure part-way leaves every event either fully replayed or untouched.
    context = services.sessions() if dry_run else services.sessions.begin()
    async with context as session:
        event = await session.get(Event, event_id)
        if event is None:
            return EventReplay(event_id=event_id, outcome="not_found"), []
        report = EventReplay(
            event_id=event.id,
            outcome="planned" if dry_run else "replayed",
            event_type=event.event_type,
            channel_id=event.channel_id,
            correlation_id=event.correlation_id,
            external_id=event.external_id,
            dedup_key=event.dedup_key,
        )
        if event.state != "processed":
            report.outcome = "skipped"
            report.note = (
                "not processed yet: the pipeline routes it"
                if event.state == "received"
                else f"processing {event.state}: {event.last_error or 'no error recorded'}"
            )
            return report, []
        if event.raw_body is None and event.source == "webhook":
            report.note = "raw body purged by retention: rules on event.data see nothing"
        existing = list(
            (
                await session.scalars(
                    select(Delivery).where(Delivery.event_id == event.id).order_by(Delivery.id)
                )
            ).all()
        )
        report.then = [_recorded(row) for row in existing]
        item = await _routing_input(session, event)
        with bind_event(correlation_id=event.correlation_id, event_id=event.id):
            created = await _route_again(
                session,
                item,
                report,
                existing=existing,
                loaded=loaded,
                now=services.clock(),
                dry_run=dry_run,
                force=force,
                queued=services.queue is not None,
                client_cap=services.settings.client_max_per_hour,
            )
            if not dry_run:
                log.info(
                    "event replayed%s",
                    " (forced)" if force else "",
                    extra={
                        "replay_round": report.replay_round,
                        "forced": force,
                        "deliveries": len(report.created),
                        "rules_version": loaded.rules.source.digest[:12],
                    },
                )
    # Counted as the pipeline counts its own rows: skipped/throttled now, the rest when sent.
    for _id, state, kind in created:
        if state in ("skipped", "throttled", "held"):
            services.metrics.deliveries.labels(target_kind=kind, outcome=state).inc()
    return report, [delivery_id for delivery_id, state, _kind in created if state == "pending"]


async def _routing_input(session: AsyncSession, event: Event) -> RoutingInput:
    channel, client = await load_snapshots(
        session, channel_id=event.channel_id, client_id=event.client_id
    )
    change_row = (
        await session.scalars(
            select(StatusChange)
            .where(StatusChange.event_id == event.id)
            .order_by(StatusChange.id)
            .limit(1)
        )
    ).first()
    change = (
        ObservedChange(change_row.from_status, change_row.to_status, change_row.why or "")
        if change_row is not None
        else None
    )
    # The same trust decision processing made (one function), from what it recorded.
    return routing_input(
        event,
        channel=channel,
        client=client,
        change=change,
        enriched=event.enrichment in ENRICHED_STATES,
        claim=event.claim,
        claim_reason=event.claim_reason,
    )


async def _route_again(
    session: AsyncSession,
    item: RoutingInput,
    report: EventReplay,
    *,
    existing: list[Delivery],
    loaded: LoadedRules,
    now: datetime,
    dry_run: bool,
    force: bool,
    queued: bool,
    client_cap: int,
) -> list[tuple[int, str, str]]:
    """Plan (and unless dry, insert) this event's rows; return (id, state, kind) of new ones."""
    why_silent = silenced(item)
    if why_silent is not None:
        report.note = why_silent
        return []
    subject = subject_for(item, now=now)
    matches = match_rules(loaded.rules, subject)
    sent_pairs = {(row.rule_name, row.target_name) for row in existing}
    replay_round = 0
    if force:
        replay_round = max((row.replay_round for row in existing), default=0) + 1
    report.replay_round = replay_round
    status_why = item.change.why if item.change else None
    created: list[tuple[int, str, str]] = []
    for match in matches:
        missing = [t for t in match.targets if (match.rule, t) not in sent_pairs]
        # A plain replay takes a throttle window only for what it will actually add; a
        # forced resend ignores throttles (someone asked for exactly these messages).
        throttled = False
        if not force and missing:
            throttled = await _throttled(session, match, now=now, dry_run=dry_run)
        context = build_context(
            subject,
            rule=match.rule,
            correlation_id=item.event.correlation_id,
            received_at=item.event.received_at,
            status_why=status_why,
            enriched=item.enriched,
        )
        for target in match.targets:
            action = "resend" if force else "exists" if target not in missing else "create"
            row = delivery_row(
                item,
                match,
                target,
                rules=loaded.rules,
                renderer=loaded.renderer,
                context=context,
                now=now,
                throttled=throttled,
            )
            new_id: int | None = None
            if action != "exists" and not dry_run:
                row.update(replay_round=replay_round, forced=force)
                if not queued:
                    row["enqueued_at"] = None  # nobody hands it over: leave it for the sweep
                # The client cap applies to a replay as to the pipeline (forced or not).
                new_id, new_rows = await insert_delivery(
                    session,
                    row,
                    item=item,
                    rules=loaded.rules,
                    renderer=loaded.renderer,
                    cap=client_cap,
                    now=now,
                )
                created += new_rows
            report.now.append(
                PlannedDelivery(
                    rule=match.rule,
                    target=target,
                    title=row["title"],
                    state=row["state"],
                    reason=row["last_error"],
                    action=action,
                    delivery_id=new_id,
                )
            )
    return created


async def _throttled(
    session: AsyncSession, match: RuleMatch, *, now: datetime, dry_run: bool
) -> bool:
    if not match.throttle_seconds or match.throttle_key is None:
        return False
    if dry_run:
        held = await session.scalar(
            select(func.count())
            .select_from(Throttle)
            .where(
                Throttle.rule_name == match.rule,
                Throttle.key == match.throttle_key[:300],
                Throttle.until > now,
            )
        )
        return bool(held)
    return not await claim_throttle(
        session,
        rule=match.rule,
        key=match.throttle_key,
        seconds=match.throttle_seconds,
        now=now,
    )


def _recorded(row: Delivery) -> RecordedDelivery:
    return RecordedDelivery(
        id=row.id,
        rule=row.rule_name,
        target=row.target_name,
        replay_round=row.replay_round,
        forced=row.forced,
        state=row.state,
        title=row.title,
        sent_at=row.sent_at.isoformat() if row.sent_at else None,
    )
