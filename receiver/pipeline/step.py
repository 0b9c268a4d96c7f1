"""The one pipeline step: store what is known about an event, then route it.

Processing, re-enrichment and replay all take an event through `take_step`, inside their
own transaction. With an enrichment (processing, re-enrichment) the step stores the
snapshots and status change it implies and judges a permission claim; without one
(replay) it routes from what processing recorded: the latest snapshots, the status change
the event caused, its claim verdict. Either way routing gets the same trust decision
(`route.routing_input`) and the same subject (`subject.routing_subject`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from receiver.db.engine import Session
from receiver.db.store import channels, events
from receiver.db.tables import Client, Event
from receiver.messages.render import Renderer
from receiver.pipeline.enrich import ClaimVerdict, Enrichment, judge_claim
from receiver.pipeline.route import (
    Routed,
    RouteMode,
    RoutingInput,
    is_permission_event,
    load_snapshots,
    route,
    routing_input,
)
from receiver.pipeline.snapshots import ChannelUpdate, ObservedChange, store_channel, store_client
from receiver.pipeline.subject import Body, payload_snapshots, webhook_body
from receiver.routing.ruleset import RuleSet
from receiver.vocabulary import CLIENT_EVENTS

ENRICHED_STATES = ("enriched", "enriched_late")


@dataclass(frozen=True)
class Step:
    item: RoutingInput
    routed: Routed
    update: ChannelUpdate  # what this step stored (nothing on a replay)
    verdict: ClaimVerdict | None  # the claim judged in this step (permission events)

    @property
    def claim(self) -> str | None:
        return self.verdict.claim if self.verdict else self.item.event.claim

    @property
    def claim_reason(self) -> str | None:
        return self.verdict.reason if self.verdict else self.item.event.claim_reason


async def take_step(
    session: Session,
    event: Event,
    *,
    enrichment: Enrichment | None,
    rules: RuleSet,
    renderer: Renderer,
    now: datetime,
    client_cap: int,
    mode: RouteMode = RouteMode.RECORD,
    queued: bool = True,
    first_routing: bool = False,
    claim: bool = False,
) -> Step:
    """Store what `enrichment` (or, without it, the record) says, and route the event.

    `first_routing`, `claim`: see `route.route`.
    """
    body = webhook_body(event)  # the one parse of the raw body in this run
    verdict: ClaimVerdict | None = None
    if enrichment is not None:
        update, stored_client = await apply_enrichment(
            session, event, enrichment, body=body, now=now
        )
        if is_permission_event(event):
            verdict = judge_claim(claimed_client=event.client_id, enrichment=enrichment)
        channel_id = await resolve_channel_id(session, event, update)
        change = update.change
        enriched = enrichment.state == "enriched"
    else:
        update, stored_client = ChannelUpdate(channel=None, change=None), None
        channel_id = event.channel_id
        change = await recorded_change(session, event_id=event.id)
        enriched = event.enrichment in ENRICHED_STATES
    channel, client = await load_snapshots(
        session,
        channel_id=channel_id,
        client_id=event.client_id,
        in_hand=(update.channel, stored_client),
    )
    item = routing_input(
        event,
        channel=channel,
        client=client,
        change=change,
        enriched=enriched,
        claim=verdict.claim if verdict else event.claim,
        claim_reason=verdict.reason if verdict else event.claim_reason,
        body=body,
    )
    routed = await route(
        session,
        item,
        rules=rules,
        renderer=renderer,
        now=now,
        client_cap=client_cap,
        mode=mode,
        queued=queued,
        first_routing=first_routing,
        claim=claim,
    )
    return Step(item=item, routed=routed, update=update, verdict=verdict)


async def recorded_change(session: Session, *, event_id: int) -> ObservedChange | None:
    """The status change processing recorded for the event, if it caused one."""
    row = await channels.status_change_of_event(session, event_id=event_id)
    if row is None:
        return None
    return ObservedChange(row.from_status, row.to_status, row.why or "")


async def apply_enrichment(
    session: Session, event: Event, enrichment: Enrichment, *, body: Body | None, now: datetime
) -> tuple[ChannelUpdate, Client | None]:
    """Store what enrichment (or, failing it, the payload) says about client and channel;
    return the channel's update and the client row as stored.

    The event object also takes this run's enrichment state and error (the row gets them with
    the `processed` mark, in the same transaction), so routing can tell a message's reader
    why Partner API details are missing.
    """
    event.enrichment = enrichment.state
    event.enrichment_error = enrichment.error
    payload = payload_snapshots(event, body)
    client: Client | None = None
    if enrichment.client is not None:
        client = await store_client(session, enrichment.client, now=now, source="partner_api")
    elif payload.client is not None:
        client = await store_client(session, payload.client, now=now, source="payload")
    if enrichment.channel is not None:
        update = await store_channel(
            session, enrichment.channel, event_id=event.id, now=now, enriched=True
        )
    elif payload.channel is not None and enrichment.state != "not_found":
        update = await store_channel(
            session, payload.channel, event_id=event.id, now=now, enriched=False
        )
    else:
        update = ChannelUpdate(channel=None, change=None)
    return update, client


async def resolve_channel_id(session: Session, event: Event, update: ChannelUpdate) -> str | None:
    """The event's channel: named by it, or found through enrichment (e.g. by phone number).

    A channel found by phone number is written back onto the event, so listings, the admin
    API and later runs see it.
    """
    if event.channel_id is not None:
        return event.channel_id
    if update.channel is None or event.event_type in CLIENT_EVENTS:
        return None
    await events.update_event(session, event_id=event.id, values={"channel_id": update.channel.id})
    event.channel_id = update.channel.id  # as the row now says (its sends check ownership)
    return update.channel.id
