"""Routing: turn an enriched event into delivery rows, inside the event's transaction.

One row per (event, rule, target, replay round), inserted with ON CONFLICT DO NOTHING: a
second run of the same event (a retry, a sweep, a second worker) adds nothing. Messages are
rendered here and stored on the row, so what was sent is on record next to the attempts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from receiver import delivery as transport
from receiver.db.tables import Channel, Client, Delivery, Event, Throttle
from receiver.ingest.payload import CLIENT_EVENTS, PERMISSION_EVENTS
from receiver.messages.context import build_context
from receiver.messages.render import Renderer
from receiver.pipeline.snapshots import ObservedChange
from receiver.routing.matcher import RuleMatch, match_rules
from receiver.routing.ruleset import RuleSet, audience_for_target
from receiver.routing.subject import RoutingSubject

CLIENT_TARGET = "client"


@dataclass(frozen=True)
class RoutingInput:
    event: Event
    channel: Channel | None
    client: Client | None
    change: ObservedChange | None
    enriched: bool
    client_trusted: bool  # may the `client` target be told about this event at all?
    distrust_reason: str | None = None


def event_fields(event: Event) -> dict[str, Any]:
    """The event as rules see it: parsed fields flat, plus the raw `data` object."""
    fields: dict[str, Any] = dict(event.parsed)
    fields["type"] = event.event_type
    fields["source"] = event.source
    data: Any = None
    if event.source == "webhook" and event.raw_body:
        try:
            body = orjson.loads(event.raw_body)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            data = body.get("data")
            fields.setdefault("id", body.get("id"))
    if event.claim is not None:
        fields["claim"] = event.claim
    fields["data"] = data
    return fields


def subject_for(item: RoutingInput, *, now: datetime) -> RoutingSubject:
    change = (item.change.from_status, item.change.to_status) if item.change else None
    return RoutingSubject(
        event_type=item.event.event_type,
        event=event_fields(item.event),
        channel=item.channel.snapshot if item.channel else None,
        client=item.client.snapshot if item.client else None,
        status_change=change,
        now=now,
    )


def target_kind(name: str, rules: RuleSet) -> str:
    if name == CLIENT_TARGET:
        return CLIENT_TARGET
    url = rules.target_url(name)
    if not url:
        return "unconfigured"
    return url.split("://", 1)[0].lower()[:40] if "://" in url else "unknown"


def client_recipient(item: RoutingInput) -> tuple[str | None, str | None]:
    """Which client may be told about this event, or why none may (pure)."""
    if not item.client_trusted:
        return None, item.distrust_reason or "the event's client is not confirmed"
    if item.event.event_type in CLIENT_EVENTS:
        return item.event.client_id, None
    if item.channel is None or item.channel.client_id is None:
        return None, "no channel owner is known for this event"
    return item.channel.client_id, None


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def claim_throttle(
    session: AsyncSession, *, rule: str, key: str, seconds: int, now: datetime
) -> bool:
    """Take the (rule, key) window if it is free; False while another match holds it."""
    until = now + timedelta(seconds=seconds)
    statement = (
        _insert(session)(Throttle)
        .values(rule_name=rule, key=key[:300], until=until)
        .on_conflict_do_update(
            index_elements=["rule_name", "key"],
            set_={"until": until},
            where=Throttle.until <= now,
        )
        .returning(Throttle.rule_name)
    )
    return (await session.execute(statement)).first() is not None


async def route(
    session: AsyncSession,
    item: RoutingInput,
    *,
    rules: RuleSet,
    renderer: Renderer,
    now: datetime,
    status_why: str | None,
    replay_round: int = 0,
    forced: bool = False,
) -> list[tuple[int, str, str]]:
    """Match the rules and insert this event's deliveries; return (id, state, kind) of new rows."""
    subject = subject_for(item, now=now)
    matches = match_rules(rules, subject)
    created: list[tuple[int, str, str]] = []
    existing: set[tuple[str, str]] = {
        (rule, target)
        for rule, target in await session.execute(
            select(Delivery.rule_name, Delivery.target_name).where(
                Delivery.event_id == item.event.id, Delivery.replay_round == replay_round
            )
        )
    }
    for match in matches:
        if all((match.rule, target) in existing for target in match.targets):
            continue  # routed before (a re-run): nothing to add, and no throttle window to take
        throttled = False
        if match.throttle_seconds and match.throttle_key is not None:
            throttled = not await claim_throttle(
                session,
                rule=match.rule,
                key=match.throttle_key,
                seconds=match.throttle_seconds,
                now=now,
            )
        context = build_context(
            subject,
            rule=match.rule,
            correlation_id=item.event.correlation_id,
            received_at=item.event.received_at,
            status_why=status_why,
            enriched=item.enriched,
        )
        for target in match.targets:
            row = delivery_row(
                item,
                match,
                target,
                rules=rules,
                renderer=renderer,
                context=context,
                now=now,
                throttled=throttled,
            )
            row.update(replay_round=replay_round, forced=forced)
            new_id = (
                await session.execute(
                    _insert(session)(Delivery)
                    .values(**row)
                    .on_conflict_do_nothing(
                        index_elements=["event_id", "rule_name", "target_name", "replay_round"]
                    )
                    .returning(Delivery.id)
                )
            ).scalar_one_or_none()
            if new_id is not None:
                created.append((new_id, row["state"], row["target_kind"]))
    return created


def delivery_row(
    item: RoutingInput,
    match: RuleMatch,
    target: str,
    *,
    rules: RuleSet,
    renderer: Renderer,
    context: Mapping[str, Any],
    now: datetime,
    throttled: bool,
) -> dict[str, Any]:
    state, reason, client_id = "pending", None, None
    if target == CLIENT_TARGET:
        client_id, reason = client_recipient(item)
        if client_id is None:
            state = "skipped"
    elif not rules.target_url(target):
        state, reason = "skipped", f"target '{target}' is not configured"
    if throttled and state == "pending":
        state, reason = (
            "throttled",
            f"throttled: '{match.rule}' already notified for {match.throttle_key}",
        )
    rendered = renderer.render(
        template=match.template,
        title=match.title,
        body=match.body,
        audience=audience_for_target(target),
        context=context,
    )
    url = rules.target_url(target) if target != CLIENT_TARGET else None
    return {
        "event_id": item.event.id,
        "rule_name": match.rule,
        "target_name": target,
        "target_kind": target_kind(target, rules),
        "target_display": transport.mask(url) if url else None,
        "client_id": client_id,
        "state": state,
        "attempts": 0,
        "last_error": reason,
        "title": rendered.title,
        "body": rendered.body,
        "render_error": rendered.error,
        "throttle_key": match.throttle_key,
        # Handed to the queue right after the commit; the sweep covers a failed hand-over.
        "enqueued_at": now if state == "pending" else None,
        "created_at": now,
        "updated_at": now,
    }


async def load_snapshots(
    session: AsyncSession, *, channel_id: str | None, client_id: str | None
) -> tuple[Channel | None, Client | None]:
    channel = await session.get(Channel, channel_id) if channel_id else None
    owner = channel.client_id if channel and channel.client_id else client_id
    client = await session.get(Client, owner) if owner else None
    return channel, client


def is_permission_event(event: Event) -> bool:
    return event.event_type in PERMISSION_EVENTS


async def known_client(session: AsyncSession, client_id: str | None) -> bool:
    if client_id is None:
        return False
    found = await session.execute(select(Client.id).where(Client.id == client_id))
    return found.first() is not None
