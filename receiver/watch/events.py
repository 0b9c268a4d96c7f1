"""What a watcher found, stored as an ordinary event.

A watcher hands `WatchEvent`s to `record_watch_events`; each becomes an `events` row like a
webhook's (state received, deduplicated on its key), whose raw body is an envelope
`{"event": type, "source": watcher, **fields, "data": object}`. The pipeline then takes it
exactly as a webhook: enrichment, snapshots and status changes, rules, deliveries, replay.
The key is the watcher's own deterministic one, so a second pass, a second process or a
crash in the middle never stores the same finding twice.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from receiver.db.store import events as store
from receiver.db.types import ID_SIZE
from receiver.ingest.payload import parse_event
from receiver.services import Services
from receiver.vocabulary import EventState

VERIFICATION = "partner_api"
KEY_SIZE = 200  # events.dedup_key


@dataclass(frozen=True)
class WatchEvent:
    event_type: str
    source: str  # the watcher: reconcile | health | balance
    dedup_key: str  # deterministic: the same finding always gets the same key
    data: dict[str, Any]  # the channel or client object (Partner API shape)
    channel_id: str | None = None
    client_id: str | None = None
    phone_number: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # seen by rules as event.<name>


def stored_key(item: WatchEvent) -> str:
    """The events.dedup_key: namespaced by source, hashed if it would not fit the column."""
    key = f"{item.source}:{item.event_type}:{item.dedup_key}"
    if len(key) <= KEY_SIZE:
        return key
    return f"{item.source}:{item.event_type}:sha256:" + hashlib.sha256(key.encode()).hexdigest()


def envelope(item: WatchEvent) -> dict[str, Any]:
    return {"event": item.event_type, "source": item.source, **item.fields, "data": item.data}


def _fit(value: str | None) -> str | None:
    return value if value is None or len(value) <= ID_SIZE else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):  # a balance: rules compare numbers
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def event_row(item: WatchEvent, *, services: Services) -> dict[str, Any]:
    body = envelope(item)
    parsed = parse_event(body)
    return {
        "dedup_key": stored_key(item),
        "external_id": None,
        "correlation_id": secrets.token_hex(8),
        "source": item.source,
        "event_type": item.event_type,
        "known": True,
        "channel_id": _fit(item.channel_id or parsed.channel_id),
        "client_id": _fit(item.client_id or parsed.client_id),
        "phone_number": _fit(item.phone_number or parsed.phone_number),
        "received_at": services.clock(),
        "raw_body": orjson.dumps(body, default=_jsonable).decode(),
        "raw_purged_at": None,
        "headers": {},
        "verification": VERIFICATION,
        "parsed": parsed.model_dump(exclude_none=True),
        "claim": None,
        "claim_reason": None,
        "state": EventState.RECEIVED.value,
        "enqueued_at": None,
        "processed_at": None,
        "attempts": 0,
        "next_attempt_at": None,
        "lease_until": None,
        "last_error": None,
        "enrichment": "pending",
        "enrichment_error": None,
        "rules_version": None,
    }


async def record_watch_events(services: Services, items: Sequence[WatchEvent]) -> list[int]:
    """Store `items` (a finding already stored is skipped); return the new events' ids.

    The new ids go to the relay at once when this process has one; otherwise the sweep of
    `serve` or a worker picks them up (they are ordinary unprocessed events).
    """
    unique = {row["dedup_key"]: row for row in (event_row(i, services=services) for i in items)}
    rows = list(unique.values())
    if not rows:
        return []
    async with services.engine.begin() as conn:
        inserted = await store.insert_events(
            conn, statement=store.event_insert(services.engine), rows=rows
        )
    new_ids = sorted(event_id for event_id, _ in inserted)
    if new_ids and services.relay is not None:
        services.relay.events_committed(new_ids)
    return new_ids
