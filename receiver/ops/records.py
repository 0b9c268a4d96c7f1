"""Read models for the admin API and the CLI: pages of events, channels and deliveries.

Listings are newest first (channels: by id) with keyset cursors, so paging stays cheap and
stable while new rows arrive; `offset` is there for quick looks. Every dict returned here
is safe to show: target URLs appear only in the masked form stored on the delivery row,
and no setting is ever read. The admin API and `hub-receiver events ...` both list and
filter through here, so a filter means the same thing in both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select

from receiver.db.tables import Channel, Client, Delivery, DeliveryAttempt, Event, StatusChange
from receiver.routing.durations import parse_duration
from receiver.services import Services
from receiver.status import ChannelStatus
from receiver.vocabulary import DeliveryState, EventState

STATUS_HISTORY_LIMIT = 200
EVENT_STATES = tuple(state.value for state in EventState)
DELIVERY_STATES = tuple(state.value for state in DeliveryState)
CHANNEL_STATES = tuple(status.value for status in ChannelStatus)
# Ids are BIGINT (SQLite: INTEGER), both signed 64-bit: a larger one cannot exist, and the
# drivers refuse to send it (a 500 until this was checked).
MAX_ID = 2**63 - 1
_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]*")
MIN_PHONE_DIGITS = 4


class FilterError(ValueError):
    """A filter or paging value that cannot select anything: 422 in the API, exit 2 in the CLI."""


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
    external_id: str | None = None
    search: str | None = None  # events: our id, 360dialog's id, channel, client or phone


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


def parse_id(text: str) -> int | None:
    """`text` as one of our row ids; None when it cannot be one (not digits, beyond 64 bits)."""
    cleaned = text.strip()
    # Length first: int() of thousands of digits is slow, then refused by Python itself.
    if not cleaned.isascii() or not cleaned.isdigit() or len(cleaned) > len(str(MAX_ID)):
        return None
    number = int(cleaned)
    return number if number <= MAX_ID else None


def parse_time(text: str, *, now: datetime) -> datetime:
    """An ISO 8601 time (UTC unless it says otherwise), or a duration back from `now` (2h)."""
    cleaned = text.strip()
    try:
        return now - timedelta(seconds=parse_duration(cleaned))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise FilterError(
            "use an ISO 8601 time (2026-03-02T10:00:00Z) or a duration back from now (30m, 2h, 1d)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def check_state(state: str | None, allowed: Sequence[str]) -> None:
    if state is not None and state not in allowed:
        raise FilterError(f"state must be one of {', '.join(allowed)}")


def _cursor_id(window: Window) -> int | None:
    if window.cursor is None:
        return None
    number = parse_id(window.cursor)
    if number is None:
        raise FilterError("cursor must be a next_cursor value from a previous page (an id)")
    return number


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _page(rows: Sequence[Any], window: Window, key: str) -> tuple[Sequence[Any], str | None]:
    if len(rows) <= window.limit or window.limit < 1:  # the CLI takes --limit 0
        return rows[: max(window.limit, 0)], None
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


def _search(text: str) -> ColumnElement[bool]:
    """Exact ids (ours, 360dialog's, channel, client), or digits anywhere in the phone."""
    needle = text.strip()
    clauses: list[ColumnElement[bool]] = [
        Event.external_id == needle,
        Event.channel_id == needle,
        Event.client_id == needle,
    ]
    number = parse_id(needle)
    if number is not None:
        clauses.append(Event.id == number)
    digits = re.sub(r"\D", "", needle)
    if _PHONE.fullmatch(needle) and len(digits) >= MIN_PHONE_DIGITS:
        # Not indexed: the newest-first scan stops at the page's end, so a recent number is
        # quick; a number never seen reads every row once.
        stored = func.replace(func.replace(Event.phone_number, " ", ""), "-", "")
        clauses.append(stored.contains(digits, autoescape=True))
    return or_(*clauses)


# --- events --------------------------------------------------------------------------------


async def list_events(services: Services, *, filters: Filters, window: Window) -> Page:
    """A page of events, newest first; raise FilterError for a value that selects nothing."""
    check_state(filters.state, EVENT_STATES)
    before = _cursor_id(window)
    query = select(Event).order_by(Event.id.desc())
    if filters.since is not None:
        query = query.where(Event.received_at >= filters.since)
    if filters.until is not None:
        query = query.where(Event.received_at < filters.until)
    query = _where_event(query, filters)
    if filters.state is not None:
        query = query.where(Event.state == filters.state)
    if filters.external_id is not None:
        query = query.where(Event.external_id == filters.external_id)
    if filters.search is not None and filters.search.strip():
        query = query.where(_search(filters.search))
    if before is not None:
        query = query.where(Event.id < before)
    rows = await _fetch(services, query, window)
    kept, cursor = _page(rows, window, "id")
    return Page([event_item(event) for event in kept], cursor)


def event_summary(event: Event) -> dict[str, Any]:
    """What a listing shows of an event (the CLI table picks from it)."""
    return {
        "id": event.id,
        "external_id": event.external_id,
        "dedup_key": event.dedup_key,
        "correlation_id": event.correlation_id,
        "received_at": event.received_at.isoformat(),
        "source": event.source,
        "event_type": event.event_type,
        "known": event.known,
        "channel_id": event.channel_id,
        "client_id": event.client_id,
        "phone_number": event.phone_number,
        "verification": event.verification,
        "claim": event.claim,
        "state": event.state,
        "enrichment": event.enrichment,
        "attempts": event.attempts,
        "last_error": event.last_error,
    }


def event_item(event: Event) -> dict[str, Any]:
    item = event_summary(event)
    item.update(
        processed_at=_iso(event.processed_at),
        raw_purged=event.raw_purged_at is not None,
        rules_version=event.rules_version,
    )
    return item


async def find_events(services: Services, ref: str) -> list[int]:
    """Our ids of the event(s) `ref` names: our own id, else 360dialog's id (may be several).

    360dialog's id is unique per event type only (the dedup key is type + id).
    """
    number = parse_id(ref)
    async with services.sessions() as session:
        if number is not None and await session.get(Event, number) is not None:
            return [number]
        found = await session.scalars(
            select(Event.id).where(Event.external_id == ref.strip()).order_by(Event.id)
        )
        return list(found.all())


async def event_detail(services: Services, event_id: int) -> dict[str, Any] | None:
    """Everything known about one event: body, parsed fields, what it changed and sent."""
    if not 0 <= event_id <= MAX_ID:
        return None
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
    check_state(filters.state, DELIVERY_STATES)
    before = _cursor_id(window)
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
    if before is not None:
        query = query.where(Delivery.id < before)
    rows = await _fetch(services, query, window)
    kept, cursor = _page(rows, window, "id")
    return Page([delivery_item(d) for d in kept], cursor)


async def delivery_detail(services: Services, delivery_id: int) -> dict[str, Any] | None:
    if not 0 <= delivery_id <= MAX_ID:
        return None
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
    check_state(filters.state, CHANNEL_STATES)
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
