"""Read models for the admin API (and the CLI): pages of events, channels and deliveries.

Listings are newest first (channels: by id) with keyset cursors, so paging stays cheap and
stable while new rows arrive; `offset` is there for quick looks. Every dict returned here
is safe to show: target URLs appear only in the masked form stored on the delivery row,
and no setting is ever read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from receiver.db.tables import Channel, Client, Delivery, DeliveryAttempt, Event, StatusChange
from receiver.services import Services
from receiver.views import event_summary

STATUS_HISTORY_LIMIT = 200


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    event_type: str | None = None
    channel: str | None = None
    client: str | None = None
    state: str | None = None
    rule: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class Window:
    limit: int = 50
    cursor: str | None = None  # the last id of the previous page
    offset: int = 0


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "count": len(self.items), "next_cursor": self.next_cursor}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _page(rows: Sequence[Any], window: Window, key: str) -> tuple[Sequence[Any], str | None]:
    if len(rows) <= window.limit:
        return rows, None
    kept = rows[: window.limit]
    return kept, str(getattr(kept[-1], key))


def _where_event(query: Any, filters: Filters) -> Any:
    """The event-type, channel and client filters, shared by the event and delivery lists."""
    if filters.event_type is not None:
        query = query.where(Event.event_type == filters.event_type)
    if filters.channel is not None:
        query = query.where(Event.channel_id == filters.channel)
    if filters.client is not None:
        query = query.where(Event.client_id == filters.client)
    return query


# --- events --------------------------------------------------------------------------------


async def list_events(services: Services, *, filters: Filters, window: Window) -> Page:
    query = select(Event).order_by(Event.id.desc())
    if filters.since is not None:
        query = query.where(Event.received_at >= filters.since)
    if filters.until is not None:
        query = query.where(Event.received_at < filters.until)
    query = _where_event(query, filters)
    if filters.state is not None:
        query = query.where(Event.state == filters.state)
    if window.cursor is not None:
        query = query.where(Event.id < int(window.cursor))
    rows = await _fetch(services, query, window)
    kept, cursor = _page(rows, window, "id")
    return Page([event_item(event) for event in kept], cursor)


def event_item(event: Event) -> dict[str, Any]:
    item = event_summary(event)
    item.update(
        processed_at=_iso(event.processed_at),
        raw_purged=event.raw_purged_at is not None,
        rules_version=event.rules_version,
    )
    return item


async def event_detail(services: Services, event_id: int) -> dict[str, Any] | None:
    """Everything known about one event: body, parsed fields, what it changed and sent."""
    async with services.sessions() as session:
        event = await session.get(Event, event_id)
        if event is None:
            return None
        changes = (
            await session.scalars(
                select(StatusChange)
                .where(StatusChange.event_id == event_id)
                .order_by(StatusChange.id)
            )
        ).all()
        deliveries = (
            await session.scalars(
                select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.id)
            )
        ).all()
        attempts = await _attempts(session, [d.id for d in deliveries])
    detail = event_item(event)
    detail.update(
        dedup_key=event.dedup_key,
        raw_body=event.raw_body,
        raw_purged_at=_iso(event.raw_purged_at),
        headers=event.headers,
        parsed=event.parsed,
        claim_reason=event.claim_reason,
        enrichment_error=event.enrichment_error,
        enqueued_at=_iso(event.enqueued_at),
        next_attempt_at=_iso(event.next_attempt_at),
        lease_until=_iso(event.lease_until),
        status_changes=[status_change_item(change) for change in changes],
        deliveries=[
            {**delivery_item(d, full=True), "attempt_log": attempts.get(d.id, [])}
            for d in deliveries
        ],
    )
    return detail


# --- deliveries ----------------------------------------------------------------------------


async def list_deliveries(services: Services, *, filters: Filters, window: Window) -> Page:
    query = select(Delivery).order_by(Delivery.id.desc())
    if filters.state is not None:
        query = query.where(Delivery.state == filters.state)
    if filters.since is not None:
        query = query.where(Delivery.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(Delivery.created_at < filters.until)
    if filters.rule is not None:
        query = query.where(Delivery.rule_name == filters.rule)
    if filters.target is not None:
        query = query.where(Delivery.target_name == filters.target)
    if filters.event_type is not None or filters.channel is not None or filters.client is not None:
        query = _where_event(query.join(Event, Event.id == Delivery.event_id), filters)
    if window.cursor is not None:
        query = query.where(Delivery.id < int(window.cursor))
    rows = await _fetch(services, query, window)
    kept, cursor = _page(rows, window, "id")
    return Page([delivery_item(d) for d in kept], cursor)


async def delivery_detail(services: Services, delivery_id: int) -> dict[str, Any] | None:
    async with services.sessions() as session:
        row = await session.get(Delivery, delivery_id)
        if row is None:
            return None
        attempts = await _attempts(session, [row.id])
    return {**delivery_item(row, full=True), "attempt_log": attempts.get(row.id, [])}


def delivery_item(row: Delivery, *, full: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.id,
        "event_id": row.event_id,
        "rule": row.rule_name,
        "target": row.target_name,
        "target_kind": row.target_kind,
        "target_display": row.target_display,  # Apprise privacy form, stored masked
        "client_id": row.client_id,
        "replay_round": row.replay_round,
        "forced": row.forced,
        "state": row.state,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "next_attempt_at": _iso(row.next_attempt_at),
        "title": row.title,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "sent_at": _iso(row.sent_at),
    }
    if full:
        item.update(
            body=row.body,
            render_error=row.render_error,
            throttle_key=row.throttle_key,
            enqueued_at=_iso(row.enqueued_at),
            claimed_at=_iso(row.claimed_at),
        )
    return item


def attempt_item(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started_at": _iso(attempt.started_at),
        "finished_at": _iso(attempt.finished_at),
        "outcome": attempt.outcome,
        "error": attempt.error,
    }


async def _attempts(session: Any, delivery_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not delivery_ids:
        return {}
    rows = (
        await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(delivery_ids))
            .order_by(DeliveryAttempt.id)
        )
    ).all()
    grouped: dict[int, list[dict[str, Any]]] = {}
    for attempt in rows:
        grouped.setdefault(attempt.delivery_id, []).append(attempt_item(attempt))
    return grouped


# --- channels ------------------------------------------------------------------------------


async def list_channels(services: Services, *, filters: Filters, window: Window) -> Page:
    query = select(Channel).order_by(Channel.id)
    if filters.client is not None:
        query = query.where(Channel.client_id == filters.client)
    if filters.state is not None:
        query = query.where(Channel.status == filters.state)
    if filters.since is not None:
        query = query.where(Channel.fetched_at >= filters.since)
    if filters.until is not None:
        query = query.where(Channel.fetched_at < filters.until)
    if window.cursor is not None:
        query = query.where(Channel.id > window.cursor)
    rows = await _fetch(services, query, window)
    kept, cursor = _page(rows, window, "id")
    return Page([channel_item(channel) for channel in kept], cursor)


def channel_item(channel: Channel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "client_id": channel.client_id,
        "phone_number": channel.phone_number,
        "status": channel.status,
        "status_why": channel.status_why,
        "enriched": channel.enriched,
        "snapshot_at": _iso(channel.snapshot_at),
        "fetched_at": _iso(channel.fetched_at),
        "version": channel.version,
    }


async def channel_detail(services: Services, channel_id: str) -> dict[str, Any] | None:
    """The channel's snapshot, its status and why, its owner and its status history."""
    async with services.sessions() as session:
        channel = await session.get(Channel, channel_id)
        if channel is None:
            return None
        client = await session.get(Client, channel.client_id) if channel.client_id else None
        history = (
            await session.scalars(
                select(StatusChange)
                .where(StatusChange.channel_id == channel_id)
                .order_by(StatusChange.channel_version.desc())
                .limit(STATUS_HISTORY_LIMIT)
            )
        ).all()
    detail = channel_item(channel)
    detail.update(
        snapshot=channel.snapshot,
        client=client_item(client) if client is not None else None,
        status_history=[status_change_item(change) for change in history],
    )
    return detail


def client_item(client: Client) -> dict[str, Any]:
    return {
        "id": client.id,
        "name": client.name,
        "organisation": client.organisation,
        "contact_email": client.contact_email,
        "partner_payload": client.partner_payload,
        "source": client.source,
        "fetched_at": _iso(client.fetched_at),
    }


def status_change_item(change: StatusChange) -> dict[str, Any]:
    return {
        "id": change.id,
        "channel_id": change.channel_id,
        "from": change.from_status,
        "to": change.to_status,
        "why": change.why,
        "event_id": change.event_id,
        "changed_at": _iso(change.changed_at),
        "channel_version": change.channel_version,
    }


async def _fetch(services: Services, query: Select[Any], window: Window) -> Sequence[Any]:
    query = query.limit(window.limit + 1)
    if window.offset:
        query = query.offset(window.offset)
    async with services.sessions() as session:
        return (await session.scalars(query)).all()
