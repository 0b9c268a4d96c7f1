"""Tolerant parsing of partner webhook bodies (360dialog.md §1), and the dedup key.

360dialog documents its partner events only as screenshots, so every field is looked for at
the top level and under `data`, `data.setup_info`, `data.waba_account` (and `data.client`
for the client). Nothing here raises on odd input: a field of the wrong type is absent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from receiver.vocabulary import CLIENT_EVENTS, KNOWN_EVENTS, UNKNOWN_EVENT

MAX_FIELD = 200


class ParsedEvent(BaseModel):
    """What we could read from a webhook body; every field optional except the type."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: str
    known: bool
    delivery_id: str | None = None
    channel_id: str | None = None
    client_id: str | None = None
    phone_number: str | None = None
    phone_name: str | None = None
    status: str | None = None
    account_mode: str | None = None
    waba_status: str | None = None
    fb_account_status: str | None = None
    violation_type: str | None = None
    created_at: str | None = None
    billing_started_at: str | None = None
    # The template status event's fields (its envelope is undocumented: top level or `data`).
    template_name: str | None = None
    template_status: str | None = None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        # PostgreSQL text and jsonb cannot hold NUL; JSON can (as \u0000).
        value = value.replace("\x00", "").strip()
        return value[:MAX_FIELD] if value else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _first(key: str, *places: Mapping[str, Any]) -> str | None:
    for place in places:
        found = _text(place.get(key))
        if found is not None:
            return found
    return None


def parse_event(body: Mapping[str, Any]) -> ParsedEvent:
    """Read the fields we route on from a webhook body (a JSON object), wherever they are."""
    raw_type = _text(body.get("event")) or _text(body.get("type"))
    event_type = raw_type.lower() if raw_type else UNKNOWN_EVENT
    data = _mapping(body.get("data"))
    setup = _mapping(data.get("setup_info")) or _mapping(body.get("setup_info"))
    waba = _mapping(data.get("waba_account")) or _mapping(body.get("waba_account"))
    client = _mapping(data.get("client")) or _mapping(body.get("client"))

    is_client_event = event_type in CLIENT_EVENTS
    if is_client_event:
        channel_id = _first("channel_id", body, data)
        client_id = (
            _first("client_id", body, data) or _text(data.get("id")) or _text(client.get("id"))
        )
    else:
        channel_id = _first("channel_id", body, data) or _text(data.get("id"))
        client_id = _first("client_id", body, data, waba) or _text(client.get("id"))
        if isinstance(body.get("client"), str):
            client_id = client_id or _text(body.get("client"))

    return ParsedEvent(
        event_type=event_type,
        known=event_type in KNOWN_EVENTS,
        delivery_id=_text(body.get("id")),
        channel_id=channel_id,
        client_id=client_id,
        phone_number=_first("phone_number", body, data, setup),
        phone_name=_first("phone_name", body, data, setup),
        status=_first("status", body, data),
        account_mode=_first("account_mode", body, data),
        waba_status=_text(waba.get("status")),
        fb_account_status=_first("fb_account_status", body, data, waba),
        violation_type=_first("violation_type", body, data, waba),
        created_at=_first("created_at", body, data),
        billing_started_at=_first("billing_started_at", body, data),
        template_name=_first("template_name", body, data),
        template_status=_first("template_status", body, data),
    )


def webhook_dedup_key(body: Mapping[str, Any], parsed: ParsedEvent, raw: bytes) -> str:
    """The key two deliveries of the same event share.

    360dialog does not document an event id. When the body carries a top-level `id` we trust
    it together with the event type; otherwise the key is a hash of the body in canonical
    JSON (sorted keys, no whitespace), so a redelivery with different formatting still
    matches while any change of content makes a new event.
    """
    if parsed.delivery_id is not None:
        return f"wh:id:{parsed.event_type}:{parsed.delivery_id}"[:200]
    try:
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        # Deeper than orjson writes (254 levels; it reads 1024): key on the bytes as sent.
        return "wh:raw:" + hashlib.sha256(raw).hexdigest()
    return "wh:body:" + hashlib.sha256(canonical).hexdigest()
