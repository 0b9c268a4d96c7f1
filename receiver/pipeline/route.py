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

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from receiver.db.engine import Session
from receiver.db.store import channels, deliveries, groups, throttles
from receiver.db.tables import Channel, Client, Delivery, Event
from receiver.messages.context import build_context
from receiver.messages.render import Renderer
from receiver.notify import apprise as transport
from receiver.pipeline.snapshots import ObservedChange
from receiver.pipeline.subject import Body, routing_subject
from receiver.routing.matcher import RuleMatch, match_rules
from receiver.routing.ruleset import RuleSet, audience_for_target
from receiver.routing.subject import RoutingSubject
from receiver.vocabulary import (
    CLIENT_EVENTS,
    CLIENT_TARGET,
    PERMISSION_EVENTS,
    Claim,
    DeliveryState,
)

NOT_AUTHENTICATED = "webhook not authenticated"
# Event.verification values that proved the sender; "partner_api": recorded by our own
# watchers from what the Partner API answered, not sent by a stranger.
AUTHENTICATED = ("signature", "shared_secret", "partner_api")
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
    # The webhook's raw body, parsed once per run (`subject.webhook_body`).
    body: Body | None = None


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
        if claim == Claim.CONFIRMED:
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
    body: Body | None,
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
        body=body,
    )


def silenced(item: RoutingInput) -> str | None:
    """Why this event must notify no one at all, or None (pure)."""
    claim = item.claim if item.claim is not None else item.event.claim
    if item.event.event_type in PERMISSION_EVENTS and claim == Claim.REJECTED:
        return "a rejected permission claim notifies no one"
    if item.event.source == "reconcile" and item.body is not None and item.body.get("baseline"):
        return "the first reconciliation pass learns the estate; it announces nothing"
    return None


def subject_for(item: RoutingInput, *, now: datetime) -> RoutingSubject:
    change = (item.change.from_status, item.change.to_status) if item.change else None
    return routing_subject(
        item.event,
        body=item.body,
        channel=item.channel.snapshot if item.channel else None,
        client=item.client.snapshot if item.client else None,
        status_change=change,
        claim=item.claim,
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


async def claim_throttle(
    session: Session, *, rule: str, key: str, seconds: int, now: datetime
) -> bool:
    """Take the (rule, key) window if it is free; False while another match holds it."""
    until = now + timedelta(seconds=seconds)
    return await throttles.claim_window(session, rule=rule, key=key, until=until, now=now)


class RouteMode(StrEnum):
    """What `route` does with the matches."""

    PLAN = "plan"  # write nothing: report what would be created now (replay's dry run)
    RECORD = "record"  # add rows for the (rule, target) pairs the event has none for, any round
    FORCE = "force"  # every match once more, in a new round, throttles aside


@dataclass(frozen=True)
class PlannedDelivery:
    """One (rule, target) the rules pick for the event, and what routing did about it."""

    rule: str
    target: str
    title: str | None
    state: str  # pending | skipped | throttled | held: what the row (would) start as
    reason: str | None
    action: str  # create | exists (a row is there already) | resend (forced)
    delivery_id: int | None = None  # the row this run wrote


@dataclass
class Routed:
    silenced: str | None = None  # why the event notifies no one, when it does not
    replay_round: int = 0
    planned: list[PlannedDelivery] = field(default_factory=list)
    created: list[tuple[int, str, str]] = field(default_factory=list)  # (id, state, kind)
    # Rows written already claimed for sending (`claim`): the caller sends them after commit.
    claimed: list[Delivery] = field(default_factory=list)


async def route(
    session: Session,
    item: RoutingInput,
    *,
    rules: RuleSet,
    renderer: Renderer,
    now: datetime,
    client_cap: int,
    mode: RouteMode = RouteMode.RECORD,
    queued: bool = True,
    first_routing: bool = False,
    claim: bool = False,
) -> Routed:
    """Match the rules and (unless planning) insert this event's deliveries.

    One routing for the pipeline, re-enrichment and replay: RECORD adds what the event has
    no row for yet (in any round: what was sent is never sent again), so a re-run adds
    nothing and a run under new rules adds exactly what they add; FORCE writes every match
    in round max + 1; PLAN reads throttles instead of taking them and writes nothing.
    `queued=False` leaves new rows for the sweep (nobody hands them to a queue).
    `first_routing`: the event's first processing, which has no rows to read (deliveries are
    only ever written in the transaction that marks an event processed).
    `claim`: a row that would wait for a sender is written claimed (`sending`, attempt 1, as a
    `deliver` claim writes it) and returned in `claimed`, for the caller to send after the
    commit; if the caller dies first, the claim's lease expires and the sweep sends it.
    """
    routed = Routed(silenced=silenced(item))
    if routed.silenced is not None:
        return routed
    subject = subject_for(item, now=now)
    matches = match_rules(rules, subject)
    existing = (
        []
        if first_routing
        else await deliveries.deliveries_of_event(session, event_id=item.event.id)
    )
    sent = {(row.rule_name, row.target_name) for row in existing}
    if mode is RouteMode.FORCE:
        routed.replay_round = max((row.replay_round for row in existing), default=0) + 1
    for match in matches:
        missing = [t for t in match.targets if (match.rule, t) not in sent]
        # Decided at routing time with `now`: a forced resend is someone asking for it now.
        hold = None if mode is RouteMode.FORCE else rules.hold(match.rule, now=now)
        # A window is taken only for what will actually be sent now (never by a re-run, nor
        # by a held message: its catch-up summary is throttled when it goes out); a forced
        # resend ignores throttles (someone asked for exactly these messages).
        throttled = False
        if mode is not RouteMode.FORCE and missing and hold is None:
            throttled = await _throttled(session, match, now=now, take=mode is RouteMode.RECORD)
        context = build_context(
            subject,
            rule=match.rule,
            correlation_id=item.event.correlation_id,
            received_at=item.event.received_at,
            status_why=item.change.why if item.change else None,
            enriched=item.enriched,
            enrichment=item.event.enrichment,
            enrichment_error=item.event.enrichment_error,
        )
        for target in match.targets:
            if mode is RouteMode.FORCE:
                action = "resend"
            else:
                action = "create" if target in missing else "exists"
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
            if hold is not None and row["state"] == DeliveryState.PENDING:
                # Held, not dropped: the catch-up watcher tells the target when it ends.
                row.update(
                    state=DeliveryState.HELD,
                    last_error=hold.reason,
                    held_by=hold.held_by,
                    held_until=hold.until,
                    enqueued_at=None,
                    group_key=groups.key_text(match.group_key) if match.group_key else None,
                )
            if (
                match.group_key is not None
                and row["state"] == DeliveryState.PENDING
                and mode is not RouteMode.FORCE
            ):
                # A member waits in its group; the flusher (watch/groups.py) sends one
                # message for the group's members when its window ends.
                row.update(
                    state=DeliveryState.GROUPED,
                    enqueued_at=None,
                    group_context=member_context(context),
                )
                if action == "create" and mode is RouteMode.RECORD:
                    row["group_id"] = await groups.join_group(
                        session,
                        rule=match.rule,
                        target=target,
                        key=match.group_key,
                        template=match.template,
                        wait=match.group_wait,
                        interval=match.group_interval,
                        now=now,
                    )
            new_id: int | None = None
            if action != "exists" and mode is not RouteMode.PLAN:
                row.update(replay_round=routed.replay_round, forced=mode is RouteMode.FORCE)
                if not queued:
                    row["enqueued_at"] = None
                # The client cap applies to every insert, forced or not.
                new_id, new_rows = await insert_delivery(
                    session,
                    row,
                    item=item,
                    rules=rules,
                    renderer=renderer,
                    cap=client_cap,
                    now=now,
                    claim=claim,
                )
                routed.created += new_rows
                if new_id is not None and row["state"] == DeliveryState.SENDING:
                    routed.claimed.append(Delivery(id=new_id, **row))
            routed.planned.append(
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
    return routed


def member_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """The context as plain JSON, stored on a grouped member for the group's message."""
    plain: dict[str, Any] = json.loads(json.dumps(context, default=str))
    return plain


async def _throttled(session: Session, match: RuleMatch, *, now: datetime, take: bool) -> bool:
    if not match.throttle_seconds or match.throttle_key is None:
        return False
    if not take:
        return await throttles.window_held(
            session, rule=match.rule, key=match.throttle_key, now=now
        )
    return not await claim_throttle(
        session, rule=match.rule, key=match.throttle_key, seconds=match.throttle_seconds, now=now
    )


async def insert_delivery(
    session: Session,
    row: dict[str, Any],
    *,
    item: RoutingInput,
    rules: RuleSet,
    renderer: Renderer,
    cap: int,
    now: datetime,
    claim: bool = False,
) -> tuple[int | None, list[tuple[int, str, str]]]:
    """Insert one delivery row, holding a client message over the cap.

    Return the row's id (None when it existed) and (id, state, kind) of every new row: a
    held row comes with the team's notice about it (at most one per client per hour).
    With `claim`, a row that would wait for a sender is written claimed for sending now.
    """
    created: list[tuple[int, str, str]] = []
    if (
        row["target_name"] == CLIENT_TARGET
        and row["state"] == DeliveryState.PENDING
        and row["client_id"]
    ):
        client_id = row["client_id"]
        if not await take_client_slot(session, client_id=client_id, cap=cap, now=now):
            row.update(state=DeliveryState.HELD, last_error=held_reason(cap), enqueued_at=None)
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
    if claim and row["state"] == DeliveryState.PENDING:
        # `enqueued_at` stays: the sweep leaves the row alone until it is stale, and a claim
        # that outlives SEND_LEASE (its sender died) is claimed again like any other.
        row.update(state=DeliveryState.SENDING, attempts=1, claimed_at=now)
    new_id = await deliveries.insert_delivery(session, row=row)
    if new_id is not None:
        created.append((new_id, row["state"], row["target_kind"]))
    return new_id, created


def held_reason(cap: int) -> str:
    return (
        f"held: the client was already sent {cap} messages in the last hour "
        f"(CLIENT_MAX_PER_HOUR={cap}); `deliveries retry ID` sends it"
    )


def cap_slot_keys(client_id: str, cap: int) -> list[str]:
    return [f"{client_id}/{slot}" for slot in range(cap)]


async def take_client_slot(session: Session, *, client_id: str, cap: int, now: datetime) -> bool:
    """Take one of the client's `cap` hourly slots; False when every one is in use.

    Each slot is a `throttles` row held for an hour, taken by the conditional upsert that
    rule throttles use: a concurrent transaction taking the same slot waits on its row and
    then finds it held, and moves on to the next, so the cap holds across workers.
    """
    keys = cap_slot_keys(client_id, cap)
    held = await throttles.held_keys(session, rule=CAP_SLOTS, keys=keys, now=now)
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
    session: Session,
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
    state, reason = DeliveryState.PENDING, None
    if not url:
        state = DeliveryState.SKIPPED
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
        "enqueued_at": now if state == DeliveryState.PENDING else None,
        "created_at": now,
        "updated_at": now,
        "replay_round": replay_round,
        "forced": False,
    }
    new_id = await deliveries.insert_delivery(session, row=row)
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
    state, reason, client_id = DeliveryState.PENDING, None, None
    if target == CLIENT_TARGET:
        client_id, reason = client_recipient(item)
        if client_id is None:
            state = DeliveryState.SKIPPED
    elif not rules.target_url(target):
        state, reason = DeliveryState.SKIPPED, f"target '{target}' is not configured"
    if throttled and state == DeliveryState.PENDING:
        state, reason = (
            DeliveryState.THROTTLED,
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
        "enqueued_at": now if state == DeliveryState.PENDING else None,
        "created_at": now,
        "updated_at": now,
    }


async def load_snapshots(
    session: Session,
    *,
    channel_id: str | None,
    client_id: str | None,
    in_hand: Iterable[Channel | Client | None] = (),
) -> tuple[Channel | None, Client | None]:
    """The event's channel and its owner; rows `in_hand` (just stored) are not read again."""
    held_channels = {row.id: row for row in in_hand if isinstance(row, Channel)}
    held_clients = {row.id: row for row in in_hand if isinstance(row, Client)}
    channel = None
    if channel_id:
        channel = held_channels.get(channel_id) or await channels.get_channel(
            session, channel_id=channel_id
        )
    owner = channel.client_id if channel and channel.client_id else client_id
    client = None
    if owner:
        client = held_clients.get(owner) or await channels.get_client(session, client_id=owner)
    return channel, client


def is_permission_event(event: Event) -> bool:
    return event.event_type in PERMISSION_EVENTS


async def known_client(session: Session, client_id: str | None) -> bool:
    if client_id is None:
        return False
    return await channels.client_exists(session, client_id=client_id)


async def revive_client_deliveries(
    session: Session,
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
    skipped = await deliveries.skipped_without_owner(
        session, event_id=item.event.id, target=CLIENT_TARGET
    )
    created: list[tuple[int, str, str]] = []
    for row in skipped:
        state, reason = DeliveryState.PENDING, None
        if not await take_client_slot(session, client_id=owner, cap=cap, now=now):
            state, reason = DeliveryState.HELD, held_reason(cap)
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
        await deliveries.revive_skipped(
            session, delivery_id=row.id, state=state, client_id=owner, reason=reason, now=now
        )
        created.append((row.id, state, row.target_kind))
    return created
