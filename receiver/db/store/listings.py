"""The reads behind the read models (`receiver/ops/records.py`): pages and one-row views.

Each function opens one short session, reads, and returns rows that stay usable after it
closes (the session factory does not expire them). Pages are fetched one row longer than
asked, so the caller can tell whether there is a next page without counting.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import ColumnElement, Row, Select, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from receiver.db.engine import Sessions
from receiver.db.errors import DatabaseUnavailableError
from receiver.db.tables import (
    BalanceHistory,
    Channel,
    Client,
    ClientBalance,
    Delivery,
    DeliveryAttempt,
    Event,
    NumberHealth,
    StatusChange,
)

_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]*")
MIN_PHONE_DIGITS = 4

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
# Any select: the filters below add WHERE clauses whatever the selected columns are.
_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")


# --- pages ---------------------------------------------------------------------------------


async def events_page(
    sessions: Sessions,
    *,
    since: datetime | None,
    until: datetime | None,
    event_type: str | None,
    channel: str | None,
    client: str | None,
    state: str | None,
    external_id: str | None,
    search: str | None,
    search_id: int | None,
    before: int | None,
    limit: int,
    offset: int,
    source: str | None = None,
) -> Sequence[Event]:
    """Up to `limit + 1` events, newest first, older than `before` when given.

    `search` matches 360dialog's id, the channel, the client or digits of the phone;
    `search_id` (the search read as one of our ids, if it can be one) our own id.
    """
    query = select(Event).order_by(Event.id.desc())
    if since is not None:
        query = query.where(Event.received_at >= since)
    if until is not None:
        query = query.where(Event.received_at < until)
    query = _where_event(query, event_type=event_type, channel=channel, client=client)
    if state is not None:
        query = query.where(Event.state == state)
    if source is not None:
        query = query.where(Event.source == source)
    if external_id is not None:
        query = query.where(Event.external_id == external_id)
    if search is not None and search.strip():
        query = query.where(_search(search, search_id=search_id))
    if before is not None:
        query = query.where(Event.id < before)
    return await _scalars(sessions, query, limit=limit, offset=offset)


async def deliveries_page(
    sessions: Sessions,
    *,
    since: datetime | None,
    until: datetime | None,
    event_type: str | None,
    channel: str | None,
    client: str | None,
    state: str | None,
    rule: str | None,
    target: str | None,
    before: int | None,
    limit: int,
    offset: int,
) -> Sequence[Row[Delivery, str]]:
    """Up to `limit + 1` deliveries with their event's type, newest first."""
    query = (
        select(Delivery, Event.event_type)
        .join(Event, Event.id == Delivery.event_id)
        .order_by(Delivery.id.desc())
    )
    if state is not None:
        query = query.where(Delivery.state == state)
    if since is not None:
        query = query.where(Delivery.created_at >= since)
    if until is not None:
        query = query.where(Delivery.created_at < until)
    if rule is not None:
        query = query.where(Delivery.rule_name == rule)
    if target is not None:
        query = query.where(Delivery.target_name == target)
    query = _where_event(query, event_type=event_type, channel=channel, client=client)
    if before is not None:
        query = query.where(Delivery.id < before)
    return await _rows(sessions, query, limit=limit, offset=offset)


async def channels_page(
    sessions: Sessions,
    *,
    since: datetime | None,
    until: datetime | None,
    client: str | None,
    status: str | None,
    after: str | None,
    recently_fetched_first: bool,
    limit: int,
    offset: int,
    search: str | None = None,
    channel: str | None = None,
) -> Sequence[Row[Channel, Client]]:  # the client may be None (outer join)
    """Up to `limit + 1` channels with their client: by id after `after`, or newest fetch first."""
    query = select(Channel, Client).outerjoin(Client, Client.id == Channel.client_id)
    if channel is not None:
        query = query.where(Channel.id == channel)
    if search is not None and search.strip():
        query = query.where(_channel_search(search))
    if recently_fetched_first:
        query = query.order_by(Channel.fetched_at.desc(), Channel.id)
    else:
        query = query.order_by(Channel.id)
    if client is not None:
        query = query.where(Channel.client_id == client)
    if status is not None:
        query = query.where(Channel.status == status)
    if since is not None:
        query = query.where(Channel.fetched_at >= since)
    if until is not None:
        query = query.where(Channel.fetched_at < until)
    if after is not None:
        query = query.where(Channel.id > after)
    return await _rows(sessions, query, limit=limit, offset=offset)


def _channel_search(text: str) -> ColumnElement[bool]:
    """Exact channel or client id, digits anywhere in the phone, or a piece of the display
    name, the client's name or its organisation (case-insensitive)."""
    needle = text.strip()
    piece = needle.lower()
    clauses: list[ColumnElement[bool]] = [
        Channel.id == needle,
        Channel.client_id == needle,
        func.lower(Channel.display_name).contains(piece, autoescape=True),
        func.lower(Client.name).contains(piece, autoescape=True),
        func.lower(Client.organisation).contains(piece, autoescape=True),
    ]
    digits = re.sub(r"\D", "", needle)
    if _PHONE.fullmatch(needle) and len(digits) >= MIN_PHONE_DIGITS:
        stored = func.replace(func.replace(Channel.phone_number, " ", ""), "-", "")
        clauses.append(stored.contains(digits, autoescape=True))
    return or_(*clauses)


def _where_event(
    query: _Query, *, event_type: str | None, channel: str | None, client: str | None
) -> _Query:
    """The event-type, channel and client filters, shared by the event and delivery lists."""
    if event_type is not None:
        query = query.where(Event.event_type == event_type)
    if channel is not None:
        query = query.where(Event.channel_id == channel)
    if client is not None:
        query = query.where(Event.client_id == client)
    return query


def _search(text: str, *, search_id: int | None) -> ColumnElement[bool]:
    """Exact ids (ours, 360dialog's, channel, client), or digits anywhere in the phone."""
    needle = text.strip()
    clauses: list[ColumnElement[bool]] = [
        Event.external_id == needle,
        Event.channel_id == needle,
        Event.client_id == needle,
    ]
    if search_id is not None:
        clauses.append(Event.id == search_id)
    digits = re.sub(r"\D", "", needle)
    if _PHONE.fullmatch(needle) and len(digits) >= MIN_PHONE_DIGITS:
        # Not indexed: the newest-first scan stops at the page's end, so a recent number is
        # quick; a number never seen reads every row once.
        stored = func.replace(func.replace(Event.phone_number, " ", ""), "-", "")
        clauses.append(stored.contains(digits, autoescape=True))
    return or_(*clauses)


async def _scalars(
    sessions: Sessions, query: Select[_T], *, limit: int, offset: int
) -> Sequence[_T]:
    query = query.limit(limit + 1)
    if offset:
        query = query.offset(offset)
    async with sessions() as session:
        return (await session.scalars(query)).all()


async def _rows(
    sessions: Sessions, query: Select[*_Ts], *, limit: int, offset: int
) -> Sequence[Row[*_Ts]]:
    query = query.limit(limit + 1)
    if offset:
        query = query.offset(offset)
    async with sessions() as session:
        return (await session.execute(query)).all()


# --- one row and what hangs off it ---------------------------------------------------------


async def event_ids(sessions: Sessions, *, event_id: int | None, external_id: str) -> list[int]:
    """`[event_id]` when that event exists, else the events carrying 360dialog's `external_id`."""
    async with sessions() as session:
        if event_id is not None and await session.get(Event, event_id) is not None:
            return [event_id]
        found = await session.scalars(
            select(Event.id).where(Event.external_id == external_id).order_by(Event.id)
        )
        return list(found.all())


@dataclass(frozen=True)
class EventRecord:
    event: Event
    status_changes: Sequence[StatusChange]
    deliveries: Sequence[Delivery]
    attempts: dict[int, list[DeliveryAttempt]]  # by delivery id, oldest first


async def event_record(sessions: Sessions, *, event_id: int) -> EventRecord | None:
    """One event with the status changes it caused and its deliveries and their attempts."""
    async with sessions() as session:
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
    return EventRecord(event, changes, deliveries, attempts)


@dataclass(frozen=True)
class DeliveryRecord:
    delivery: Delivery
    event_type: str
    attempts: list[DeliveryAttempt]  # oldest first


async def delivery_record(sessions: Sessions, *, delivery_id: int) -> DeliveryRecord | None:
    async with sessions() as session:
        found = (
            await session.execute(
                select(Delivery, Event.event_type)
                .join(Event, Event.id == Delivery.event_id)
                .where(Delivery.id == delivery_id)
            )
        ).first()
        if found is None:
            return None
        delivery, event_type = found
        attempts = await _attempts(session, [delivery.id])
    return DeliveryRecord(delivery, event_type, attempts.get(delivery.id, []))


async def _attempts(session: Any, delivery_ids: list[int]) -> dict[int, list[DeliveryAttempt]]:
    if not delivery_ids:
        return {}
    rows = (
        await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(delivery_ids))
            .order_by(DeliveryAttempt.id)
        )
    ).all()
    grouped: dict[int, list[DeliveryAttempt]] = {}
    for attempt in rows:
        grouped.setdefault(attempt.delivery_id, []).append(attempt)
    return grouped


@dataclass(frozen=True)
class ChannelRecord:
    channel: Channel
    client: Client | None
    history: Sequence[StatusChange]  # newest first
    recent_events: Sequence[Event]  # newest first


async def channel_record(
    sessions: Sessions, *, channel_id: str, history_limit: int, events_limit: int
) -> ChannelRecord | None:
    """One channel, its client, its latest status changes and its latest events."""
    async with sessions() as session:
        channel = await session.get(Channel, channel_id)
        if channel is None:
            return None
        client = await session.get(Client, channel.client_id) if channel.client_id else None
        history = (
            await session.scalars(
                select(StatusChange)
                .where(StatusChange.channel_id == channel_id)
                .order_by(StatusChange.channel_version.desc())
                .limit(history_limit)
            )
        ).all()
        events = (
            await session.scalars(
                select(Event)
                .where(Event.channel_id == channel_id)
                .order_by(Event.id.desc())
                .limit(events_limit)
            )
        ).all()
    return ChannelRecord(channel, client, history, events)


# --- for the callback endpoint -------------------------------------------------------------


async def existing_dedup_keys(
    sessions: Sessions, *, keys: Collection[str], received_after: datetime
) -> set[str]:
    """Which of `keys` belong to events received after `received_after`.

    Raises DatabaseUnavailableError when the database cannot answer (the caller answers 503).
    """
    if not keys:
        return set()
    try:
        async with sessions() as session:
            found = await session.execute(
                select(Event.dedup_key).where(
                    Event.dedup_key.in_(list(keys)), Event.received_at > received_after
                )
            )
            return set(found.scalars())
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailableError(type(exc).__name__) from exc


# --- watchers: health of numbers, balances of clients ----------------------------------------


async def number_health(
    sessions: Sessions, *, channel_ids: Sequence[str]
) -> dict[str, NumberHealth]:
    """The health rows of these channels (a channel without a key has none)."""
    if not channel_ids:
        return {}
    async with sessions() as session:
        rows = await session.execute(
            select(NumberHealth).where(NumberHealth.channel_id.in_(list(channel_ids)))
        )
        return {row.channel_id: row for row in rows.scalars()}


async def last_changes(sessions: Sessions, *, channel_ids: Sequence[str]) -> dict[str, datetime]:
    """When each of these channels last changed status (channels never seen changing: absent)."""
    if not channel_ids:
        return {}
    async with sessions() as session:
        rows = await session.execute(
            select(StatusChange.channel_id, func.max(StatusChange.changed_at))
            .where(StatusChange.channel_id.in_(list(channel_ids)))
            .group_by(StatusChange.channel_id)
        )
        return {channel_id: changed_at for channel_id, changed_at in rows}  # noqa: C416


async def balances(sessions: Sessions, *, client_ids: Sequence[str]) -> dict[str, ClientBalance]:
    """The balance rows of these clients (a client never polled has none)."""
    if not client_ids:
        return {}
    async with sessions() as session:
        rows = await session.execute(
            select(ClientBalance).where(ClientBalance.client_id.in_(list(client_ids)))
        )
        return {row.client_id: row for row in rows.scalars()}


async def clients_page(
    sessions: Sessions, *, limit: int, offset: int
) -> Sequence[Row[Client, ClientBalance]]:  # the balance may be None (outer join)
    """Up to `limit + 1` clients by id, each with its balance row."""
    query = (
        select(Client, ClientBalance)
        .outerjoin(ClientBalance, ClientBalance.client_id == Client.id)
        .order_by(Client.id)
    )
    return await _rows(sessions, query, limit=limit, offset=offset)


@dataclass(frozen=True)
class ClientRecord:
    client: Client
    balance: ClientBalance | None
    history: Sequence[BalanceHistory]
    channels: Sequence[Channel]


async def client_record(
    sessions: Sessions, *, client_id: str, history_limit: int
) -> ClientRecord | None:
    """One client with its balance, its latest balance changes and its channels."""
    async with sessions() as session:
        client = await session.get(Client, client_id)
        if client is None:
            return None
        balance = await session.get(ClientBalance, client_id)
        history = (
            await session.execute(
                select(BalanceHistory)
                .where(BalanceHistory.client_id == client_id)
                .order_by(BalanceHistory.polled_at.desc(), BalanceHistory.id.desc())
                .limit(history_limit)
            )
        ).scalars()
        channels = (
            await session.execute(
                select(Channel).where(Channel.client_id == client_id).order_by(Channel.id)
            )
        ).scalars()
        return ClientRecord(client, balance, list(history), list(channels))
