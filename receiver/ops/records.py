"""Read models for the admin API and the CLI: pages of events, channels and deliveries.

Listings are newest first (channels: by id) with keyset cursors, so paging stays cheap and
stable while new rows arrive; `offset` is there for quick looks. Every dict returned here
is safe to show: target URLs appear only in the masked form stored on the delivery row,
and no setting is ever read. The admin API, the CLI (`events`, `channels`, `deliveries`;
it only prints) and the dashboard all read through here, so an item has one shape and a
filter means the same thing everywhere. The statements are in `receiver/db/store/listings.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson

from receiver.db.store import listings
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
from receiver.db.types import MAX_ID
from receiver.durations import parse_duration
from receiver.numbers import action_needed, number_registration
from receiver.partner.facts import channel_facts
from receiver.services import Services
from receiver.status import ChannelStatus
from receiver.vocabulary import DeliveryState, EventState

T = TypeVar("T")

STATUS_HISTORY_LIMIT = 200
RECENT_EVENTS = 10
EVENT_STATES = tuple(state.value for state in EventState)
DELIVERY_STATES = tuple(state.value for state in DeliveryState)
CHANNEL_STATES = tuple(status.value for status in ChannelStatus)
# Who stored an event: 360dialog's webhook, the permission callback, or a watcher.
EVENT_SOURCES = ("webhook", "callback", "reconcile", "health", "balance")


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
    source: str | None = None  # events: webhook | callback | partner_api (the watchers)


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


def check_source(source: str | None) -> None:
    if source is not None and source not in EVENT_SOURCES:
        raise FilterError(f"source must be one of {', '.join(EVENT_SOURCES)}")


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


def _page(rows: Sequence[T], window: Window) -> tuple[Sequence[T], bool]:
    """The rows of the page, and whether there is a next one (one row more was fetched)."""
    if len(rows) <= window.limit or window.limit < 1:  # the CLI takes --limit 0
        return rows[: max(window.limit, 0)], False
    return rows[: window.limit], True


# --- events --------------------------------------------------------------------------------


async def list_events(services: Services, *, filters: Filters, window: Window) -> Page:
    """A page of events, newest first; raise FilterError for a value that selects nothing."""
    check_state(filters.state, EVENT_STATES)
    check_source(filters.source)
    rows = await listings.events_page(
        services.sessions,
        since=filters.since,
        until=filters.until,
        event_type=filters.event_type,
        channel=filters.channel,
        client=filters.client,
        state=filters.state,
        external_id=filters.external_id,
        search=filters.search,
        search_id=parse_id(filters.search) if filters.search is not None else None,
        source=filters.source,
        before=_cursor_id(window),
        limit=window.limit,
        offset=window.offset,
    )
    kept, more = _page(rows, window)
    return Page([event_item(event) for event in kept], str(kept[-1].id) if more else None)


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
    return await listings.event_ids(
        services.sessions, event_id=parse_id(ref), external_id=ref.strip()
    )


async def event_detail(services: Services, event_id: int) -> dict[str, Any] | None:
    """Everything known about one event: body, parsed fields, what it changed and sent."""
    if not 0 <= event_id <= MAX_ID:
        return None
    record = await listings.event_record(services.sessions, event_id=event_id)
    if record is None:
        return None
    event = record.event
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
        status_changes=[status_change_item(change) for change in record.status_changes],
        deliveries=[
            {
                **delivery_item(d, event_type=event.event_type, full=True),
                "attempt_log": [attempt_item(a) for a in record.attempts.get(d.id, [])],
            }
            for d in record.deliveries
        ],
    )
    return detail


# --- deliveries ----------------------------------------------------------------------------


async def list_deliveries(services: Services, *, filters: Filters, window: Window) -> Page:
    """A page of deliveries, newest first, each with its event's type."""
    check_state(filters.state, DELIVERY_STATES)
    rows = await listings.deliveries_page(
        services.sessions,
        since=filters.since,
        until=filters.until,
        event_type=filters.event_type,
        channel=filters.channel,
        client=filters.client,
        state=filters.state,
        rule=filters.rule,
        target=filters.target,
        before=_cursor_id(window),
        limit=window.limit,
        offset=window.offset,
    )
    kept, more = _page(rows, window)
    return Page(
        [delivery_item(d, event_type=event_type) for d, event_type in kept],
        str(kept[-1][0].id) if more else None,
    )


async def delivery_detail(services: Services, delivery_id: int) -> dict[str, Any] | None:
    if not 0 <= delivery_id <= MAX_ID:
        return None
    record = await listings.delivery_record(services.sessions, delivery_id=delivery_id)
    if record is None:
        return None
    return {
        **delivery_item(record.delivery, event_type=record.event_type, full=True),
        "attempt_log": [attempt_item(attempt) for attempt in record.attempts],
    }


def delivery_item(row: Delivery, *, event_type: str, full: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": event_type,
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
        "render_error": row.render_error,
        "next_attempt_at": _iso(row.next_attempt_at),
        "title": row.title,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "sent_at": _iso(row.sent_at),
    }
    if row.held_by is not None:
        # Only on held (and later summarised) rows, so other listings keep their shape.
        item.update(held_by=row.held_by, held_until=_iso(row.held_until))
    if full:
        item.update(
            body=row.body,
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


# --- channels ------------------------------------------------------------------------------


async def list_channels(
    services: Services, *, filters: Filters, window: Window, recently_fetched_first: bool = False
) -> Page:
    """A page of channels with their client's name: by id (cursor: the last id), or the
    most recently fetched first (the CLI's table; no cursor)."""
    if recently_fetched_first and window.cursor is not None:
        raise FilterError("a cursor pages channels by id, not by the time they were fetched")
    kept, more = await _channel_rows(
        services, filters, window, recently_fetched_first=recently_fetched_first
    )
    health = await listings.number_health(
        services.sessions, channel_ids=[channel.id for channel, _ in kept]
    )
    return Page(
        [channel_item(channel, client, health.get(channel.id)) for channel, client in kept],
        kept[-1][0].id if more and not recently_fetched_first else None,
    )


async def _channel_rows(
    services: Services, filters: Filters, window: Window, *, recently_fetched_first: bool
) -> tuple[Sequence[tuple[Channel, Client | None]], bool]:
    """The channels (with their client) of one page, and whether there is a next page."""
    check_state(filters.state, CHANNEL_STATES)
    rows = await listings.channels_page(
        services.sessions,
        since=filters.since,
        until=filters.until,
        client=filters.client,
        status=filters.state,
        after=window.cursor,
        recently_fetched_first=recently_fetched_first,
        limit=window.limit,
        offset=window.offset,
        search=filters.search,
        channel=filters.channel,
    )
    return _page(rows, window)


def channel_item(
    channel: Channel, client: Client | None, health: NumberHealth | None = None
) -> dict[str, Any]:
    return {
        "id": channel.id,
        "client_id": channel.client_id,
        "client_name": client.name if client is not None else None,
        "contact_email": client.contact_email if client is not None else None,
        "phone_number": channel.phone_number,
        "status": channel.status,
        "status_why": channel.status_why,
        "enriched": channel.enriched,
        "snapshot_at": _iso(channel.snapshot_at),
        "fetched_at": _iso(channel.fetched_at),
        "version": channel.version,
        **health_item(health),
    }


def health_item(health: NumberHealth | None) -> dict[str, Any]:
    """The number's health as the watcher last saw it; never its key, only whether one is set."""
    return {
        "health": health.health if health is not None else None,
        "health_checked_at": _iso(health.checked_at) if health is not None else None,
        "health_key_set": health is not None and health.api_key is not None,
    }


async def channel_detail(services: Services, channel_id: str) -> dict[str, Any] | None:
    """The channel's snapshot, its status and why, its owner, its status history (newest
    first, the latest STATUS_HISTORY_LIMIT) and its latest events."""
    found = await _channel_view(services, channel_id)
    return _channel_detail(*found) if found is not None else None


async def _channel_view(
    services: Services, channel_id: str
) -> tuple[listings.ChannelRecord, NumberHealth | None] | None:
    """One channel's record (history, recent events) and its health row, read once."""
    record = await listings.channel_record(
        services.sessions,
        channel_id=channel_id,
        history_limit=STATUS_HISTORY_LIMIT,
        events_limit=RECENT_EVENTS,
    )
    if record is None:
        return None
    health = await listings.number_health(services.sessions, channel_ids=[channel_id])
    return record, health.get(channel_id)


def _channel_detail(record: listings.ChannelRecord, health: NumberHealth | None) -> dict[str, Any]:
    detail = channel_item(record.channel, record.client, health)
    detail.update(
        snapshot=record.channel.snapshot,
        client=client_item(record.client) if record.client is not None else None,
        status_history=[status_change_item(change) for change in record.history],
        recent_events=[event_summary(event) for event in record.recent_events],
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


# --- numbers: a card per channel (the dashboard) and a row per number (the CSV export) -------


async def list_numbers(services: Services, *, filters: Filters, window: Window) -> Page:
    """A page of numbers by channel id, each with what its card shows: the channel, its
    client, health, the client's balance, when its status last changed and the action
    needed. `filters.search` matches ids exactly, digits of the phone, or a piece of the
    display name or client name."""
    kept, more = await _channel_rows(services, filters, window, recently_fetched_first=False)
    channel_ids = [channel.id for channel, _ in kept]
    client_ids = sorted({channel.client_id for channel, _ in kept if channel.client_id})
    health = await listings.number_health(services.sessions, channel_ids=channel_ids)
    changes = await listings.last_changes(services.sessions, channel_ids=channel_ids)
    balances = await listings.balances(services.sessions, client_ids=client_ids)
    items = [
        number_item(
            channel,
            client,
            health=health.get(channel.id),
            balance=balances.get(channel.client_id) if channel.client_id else None,
            last_change_at=changes.get(channel.id),
        )
        for channel, client in kept
    ]
    return Page(items, kept[-1][0].id if more else None)


def number_item(
    channel: Channel,
    client: Client | None,
    *,
    health: NumberHealth | None,
    balance: ClientBalance | None,
    last_change_at: datetime | None,
) -> dict[str, Any]:
    """A channel as a number's card and CSV row: `channel_item` plus facts and the action."""
    facts = channel_facts(channel.snapshot)
    money = balance_item(balance)
    action = action_needed(
        channel.status,
        facts,
        health=health.health if health is not None else None,
        balance_low=money["balance_low"],
    )
    return {
        **channel_item(channel, client, health),
        "display_name": channel.display_name,
        "organisation": client.organisation if client is not None else None,
        "message_on_behalf": facts.obo_status,
        "business_verification": facts.fb_account_status,
        "registration": number_registration(channel.status, facts),
        "hosting_platform_type": facts.hosting_platform_type,
        "listed": facts.listed,
        "last_change_at": _iso(last_change_at),
        "action": action.text if action is not None else None,
        "action_by": action.who if action is not None else None,
        **{key: money[key] for key in ("balance", "currency", "balance_low", "balance_polled_at")},
    }


HEALTH_EVENT = "number_health_changed"  # receiver/watch/health.py


async def number_detail(services: Services, channel_id: str) -> dict[str, Any] | None:
    """One number: its card (`number_item`), snapshot and facts, status history, health
    history (the watcher's `number_health_changed` events, newest first) and latest events."""
    found = await _channel_view(services, channel_id)
    if found is None:
        return None
    record, health = found
    channel = record.channel
    detail = _channel_detail(record, health)
    client_id = channel.client_id
    balances = await listings.balances(
        services.sessions, client_ids=[client_id] if client_id else []
    )
    changes = [change.changed_at for change in record.history]
    detail.update(
        number_item(
            channel,
            record.client,
            health=health,
            balance=balances.get(client_id) if client_id else None,
            last_change_at=max(changes) if changes else None,
        )
    )
    health_events = await listings.events_page(
        services.sessions,
        since=None,
        until=None,
        event_type=HEALTH_EVENT,
        channel=channel_id,
        client=None,
        state=None,
        external_id=None,
        search=None,
        search_id=None,
        before=None,
        limit=STATUS_HISTORY_LIMIT,
        offset=0,
    )
    detail["health_history"] = [health_change_item(event) for event in health_events]
    return detail


def health_change_item(event: Event) -> dict[str, Any]:
    """A health change as the watcher recorded it (its body; empty once retention purged it)."""
    body: dict[str, Any] = {}
    if event.raw_body is not None:
        try:
            loaded = orjson.loads(event.raw_body)
        except orjson.JSONDecodeError:
            loaded = None
        body = loaded if isinstance(loaded, dict) else {}
    return {
        "event_id": event.id,
        "at": event.received_at.isoformat(),
        "from": body.get("health_from"),
        "to": body.get("health_to"),
        "detail": body.get("health_detail"),
    }


# --- clients ---------------------------------------------------------------------------------

BALANCE_HISTORY_LIMIT = 20


async def list_clients(services: Services, *, window: Window) -> Page:
    """A page of clients by id, each with its balance and the month's usage."""
    rows = await listings.clients_page(services.sessions, limit=window.limit, offset=window.offset)
    kept, _more = _page(rows, window)
    return Page([client_summary(client, balance) for client, balance in kept], None)


def client_summary(client: Client, balance: ClientBalance | None) -> dict[str, Any]:
    return {**client_item(client), **balance_item(balance)}


def balance_item(balance: ClientBalance | None) -> dict[str, Any]:
    if balance is None:
        return {
            "balance": None,
            "currency": None,
            "total_price": None,
            "balance_polled_at": None,
            "balance_low": False,
            "balance_error": None,
        }
    return {
        "balance": balance.balance,
        "currency": balance.currency,
        "total_price": balance.total_price,
        "balance_polled_at": _iso(balance.polled_at),
        "balance_low": balance.low,
        "balance_error": balance.last_error,
    }


async def client_detail(services: Services, client_id: str) -> dict[str, Any] | None:
    """One client: contact, balance and usage, the latest balance changes, its channels."""
    record = await listings.client_record(
        services.sessions, client_id=client_id, history_limit=BALANCE_HISTORY_LIMIT
    )
    if record is None:
        return None
    detail = client_summary(record.client, record.balance)
    detail.update(
        balance_history=[balance_change_item(row) for row in record.history],
        channels=[
            {"id": c.id, "phone_number": c.phone_number, "status": c.status}
            for c in record.channels
        ],
    )
    return detail


def balance_change_item(row: BalanceHistory) -> dict[str, Any]:
    return {
        "polled_at": _iso(row.polled_at),
        "balance": row.balance,
        "currency": row.currency,
        "total_price": row.total_price,
    }
