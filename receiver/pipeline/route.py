"""Routing: turn an enriched event into delivery rows, inside the event's transaction.

One row per (event, rule, target, replay round), inserted with ON CONFLICT DO NOTHING: a
second run of the same event (a retry, a sweep, a second worker) adds nothing. Messages are
rendered here and stored on the row, so what was sent is on record next to the attempts.

Who may hear what (the anti-spam promises) is decided here, once, for the pipeline,
re-enrichment and replay alike:
- `client_trust`: only an authenticated webhook (signature or shared secret), or a
  permission claim the Partner API confirmed, may reach the built-in `client` target.
- `silenced`: a rejected permission claim (a forged or stale callback) routes nowhere.
- the client cap: at most CLIENT_MAX_PER_HOUR client messages per client in any hour.
  Each message takes one of the client's N hourly slots (`throttles` rows, taken with the
  same conditional upsert as rule throttles, inside the routing transaction), so two
  workers can never both take the last one. Over the cap a delivery is `held` (sent only
  when someone runs `deliveries retry ID`), and the team is told once per client per hour
  by a delivery row of its own (rule CAP_RULE, target `alerts`, else `ops`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.tables import Channel, Client, Delivery, Event, Throttle
from receiver.messages.context import build_context
from receiver.messages.render import Renderer
from receiver.notify import apprise as transport
from receiver.pipeline.snapshots import ObservedChange
from receiver.routing.matcher import RuleMatch, match_rules
from receiver.routing.ruleset import RuleSet, audience_for_target
from receiver.routing.subject import RoutingSubject
from receiver.vocabulary import CLIENT_EVENTS, CLIENT_TARGET, PERMISSION_EVENTS

NOT_AUTHENTICATED = "webhook not authenticated"
AUTHENTICATED = ("signature", "shared_secret")  # Event.verification values that proved the sender
# The client cap's bookkeeping lives in `throttles` (no new table): slots under CAP_SLOTS,
# the once-an-hour notice under CAP_RULE. The parentheses keep them apart from rule names.
CAP_SLOTS = "(client cap slot)"
CAP_RULE = "(client safety cap)"
CAP_TEMPLATE = "client_cap"
CAP_WINDOW = timedelta(hours=1)
CAP_NOTICE_TARGETS = ("alerts", "ops")  # the first the rules define is told


@dataclass(frozen=True)
class RoutingInput:
    event: Event
    channel: Channel | None
    client: Client | None
    change: ObservedChange | None
    enriched: bool
    client_trusted: bool  # may the `client` target be told about this event at all?
    distrust_reason: str | None = None
    # The claim verdict reached in this run (the stored `event.claim` may predate it).
    claim: str | None = None


def client_trust(
    *, event_type: str, verification: str, claim: str | None, claim_reason: str | None = None
) -> tuple[bool, str | None]:
    """May the built-in `client` target hear about this event; if not, why (pure).

    A webhook must have been authenticated: anyone can post an unsigned one, and a Partner
    API answer only confirms the channel exists, not that the event happened. A permission
    callback is a browser redirect, never authenticated; the Partner API confirming its
    claim is what makes it trustworthy.
    """
    if event_type in PERMISSION_EVENTS:
        if claim == "confirmed":
            return True, None
        return False, claim_reason or "the permission claim is not confirmed by the Partner API"
    if verification in AUTHENTICATED:
        return True, None
    return False, NOT_AUTHENTICATED


def routing_input(
    event: Event,
    *,
    channel: Channel | None,
    client: Client | None,
    change: ObservedChange | None,
    enriched: bool,
    claim: str | None,
    claim_reason: str | None,
) -> RoutingInput:
    """The routing input with the trust decision every caller must share."""
    trusted, reason = client_trust(
        event_type=event.event_type,
        verification=event.verification,
        claim=claim,
        claim_reason=claim_reason,
    )
    return RoutingInput(
        event=event,
        channel=channel,
        client=client,
        change=change,
        enriched=enriched,
        client_trusted=trusted,
        distrust_reason=reason,
        claim=claim,
    )


def silenced(item: RoutingInput) -> str | None:
    """Why this event must notify no one at all, or None (pure)."""
    claim = item.claim if item.claim is not None else item.event.claim
    if item.event.event_type in PERMISSION_EVENTS and claim == "rejected":
        return "a rejected permission claim notifies no one"
    return None


def event_fields(event: Event, *, claim: str | None = None) -> dict[str, Any]:
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
    claim = claim if claim is not None else event.claim
    if claim is not None:
        fields["claim"] = claim
    fields["data"] = data
    return fields


def subject_for(item: RoutingInput, *, now: datetime) -> RoutingSubject:
    change = (item.change.from_status, item.change.to_status) if item.change else None
    return RoutingSubject(
        event_type=item.event.event_type,
        event=event_fields(item.event, claim=item.claim),
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
    client_cap: int,
    replay_round: int = 0,
    forced: bool = False,
) -> list[tuple[int, str, str]]:
    """Match the rules and insert this event's deliveries; return (id, state, kind) of new rows."""
    if silenced(item) is not None:
        return []
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
            enrichment=item.event.enrichment,
            enrichment_error=item.event.enrichment_error,
        )
        for target in match.targets:
            if (match.rule, target) in existing:
                continue
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
            _new_id, new_rows = await insert_delivery(
                session, row, item=item, rules=rules, renderer=renderer, cap=client_cap, now=now
            )
            created += new_rows
    return created


async def insert_delivery(
    session: AsyncSession,
    row: dict[str, Any],
    *,
    item: RoutingInput,
    rules: RuleSet,
    renderer: Renderer,
    cap: int,
    now: datetime,
) -> tuple[int | None, list[tuple[int, str, str]]]:
    """Insert one delivery row, holding a client message over the cap.

    Return the row's id (None when it existed) and (id, state, kind) of every new row: a
    held row comes with the team's notice about it (at most one per client per hour).
    """
    created: list[tuple[int, str, str]] = []
    if row["target_name"] == CLIENT_TARGET and row["state"] == "pending" and row["client_id"]:
        client_id = row["client_id"]
        if not await take_client_slot(session, client_id=client_id, cap=cap, now=now):
            row.update(state="held", last_error=held_reason(cap), enqueued_at=None)
            created += await notify_cap_reached(
                session,
                item,
                client_id=client_id,
                cap=cap,
                rules=rules,
                renderer=renderer,
                replay_round=row.get("replay_round", 0),
                now=now,
            )
    new_id = await _insert_row(session, row)
    if new_id is not None:
        created.append((new_id, row["state"], row["target_kind"]))
    return new_id, created


async def _insert_row(session: AsyncSession, row: dict[str, Any]) -> int | None:
    new_id: int | None = (
        await session.execute(
            _insert(session)(Delivery)
            .values(**row)
            .on_conflict_do_nothing(
                index_elements=["event_id", "rule_name", "target_name", "replay_round"]
            )
            .returning(Delivery.id)
        )
    ).scalar_one_or_none()
    return new_id


def held_reason(cap: int) -> str:
    return (
        f"held: the client was already sent {cap} messages in the last hour "
        f"(CLIENT_MAX_PER_HOUR={cap}); `deliveries retry ID` sends it"
    )


def cap_slot_keys(client_id: str, cap: int) -> list[str]:
    return [f"{client_id}/{slot}" for slot in range(cap)]


async def take_client_slot(
    session: AsyncSession, *, client_id: str, cap: int, now: datetime
) -> bool:
    """Take one of the client's `cap` hourly slots; False when every one is in use.

    Each slot is a `throttles` row held for an hour, taken by the conditional upsert that
    rule throttles use: a concurrent transaction taking the same slot waits on its row and
    then finds it held, and moves on to the next, so the cap holds across workers.
    """
    keys = cap_slot_keys(client_id, cap)
    held = set(
        await session.scalars(
            select(Throttle.key).where(
                Throttle.rule_name == CAP_SLOTS, Throttle.key.in_(keys), Throttle.until > now
            )
        )
    )
    seconds = int(CAP_WINDOW.total_seconds())
    for key in keys:
        if key in held:
            continue
        if await claim_throttle(session, rule=CAP_SLOTS, key=key, seconds=seconds, now=now):
            return True
    return False


def cap_notice_target(rules: RuleSet) -> str:
    """The target told about held client messages: `alerts`, else `ops` (the shipped names)."""
    for name in CAP_NOTICE_TARGETS:
        if name in rules.targets:
            return name
    return CAP_NOTICE_TARGETS[0]


async def notify_cap_reached(
    session: AsyncSession,
    item: RoutingInput,
    *,
    client_id: str,
    cap: int,
    rules: RuleSet,
    renderer: Renderer,
    replay_round: int,
    now: datetime,
) -> list[tuple[int, str, str]]:
    """Record the team's notice that a client's messages are held: once per client per hour."""
    seconds = int(CAP_WINDOW.total_seconds())
    if not await claim_throttle(session, rule=CAP_RULE, key=client_id, seconds=seconds, now=now):
        return []
    target = cap_notice_target(rules)
    url = rules.target_url(target)
    subject = subject_for(item, now=now)
    context = {
        **build_context(
            subject,
            rule=CAP_RULE,
            correlation_id=item.event.correlation_id,
            received_at=item.event.received_at,
            status_why=item.change.why if item.change else None,
            enriched=item.enriched,
        ),
        "cap": {
            "client_id": client_id,
            "limit": cap,
            "until": (now + CAP_WINDOW).isoformat(timespec="seconds"),
        },
    }
    rendered = renderer.render(
        template=CAP_TEMPLATE, title=None, body=None, audience="ops", context=context
    )
    state, reason = "pending", None
    if not url:
        state = "skipped"
        reason = f"target '{target}' is not configured, so nobody was told the cap was reached"
    row: dict[str, Any] = {
        "event_id": item.event.id,
        "rule_name": CAP_RULE,
        "target_name": target,
        "target_kind": target_kind(target, rules),
        "target_display": transport.mask(url) if url else None,
        "client_id": None,
        "state": state,
        "attempts": 0,
        "last_error": reason,
        "title": rendered.title,
        "body": rendered.body,
        "render_error": rendered.error,
        "throttle_key": client_id,
        "enqueued_at": now if state == "pending" else None,
        "created_at": now,
        "updated_at": now,
        "replay_round": replay_round,
        "forced": False,
    }
    new_id = await _insert_row(session, row)
    return [] if new_id is None else [(new_id, state, row["target_kind"])]


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


async def revive_client_deliveries(
    session: AsyncSession,
    item: RoutingInput,
    *,
    rules: RuleSet,
    renderer: Renderer,
    cap: int,
    now: datetime,
) -> list[tuple[int, str, str]]:
    """Send client messages skipped for want of a known owner, now that one is (within the cap).

    Only for an event the `client` target may hear about at all: a row skipped because the
    webhook was not authenticated stays skipped whatever the Partner API says later.
    """
    owner = item.channel.client_id if item.channel is not None else None
    if owner is None or not item.client_trusted or silenced(item) is not None:
        return []
    skipped = await session.scalars(
        select(Delivery).where(
            Delivery.event_id == item.event.id,
            Delivery.target_name == CLIENT_TARGET,
            Delivery.state == "skipped",
            Delivery.client_id.is_(None),
        )
    )
    created: list[tuple[int, str, str]] = []
    for row in list(skipped):
        state, reason = "pending", None
        if not await take_client_slot(session, client_id=owner, cap=cap, now=now):
            state, reason = "held", held_reason(cap)
            created += await notify_cap_reached(
                session,
                item,
                client_id=owner,
                cap=cap,
                rules=rules,
                renderer=renderer,
                replay_round=row.replay_round,
                now=now,
            )
        await session.execute(
            update(Delivery)
            .where(Delivery.id == row.id, Delivery.state == "skipped")
            .values(
                state=state,
                client_id=owner,
                last_error=reason,
                enqueued_at=now if state == "pending" else None,
                updated_at=now,
            )
        )
        created.append((row.id, state, row.target_kind))
    return created
