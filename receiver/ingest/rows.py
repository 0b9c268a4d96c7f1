"""The stored row of a partner webhook: one function for the endpoint and `rules test`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from receiver.db.types import ID_SIZE
from receiver.ingest.payload import ParsedEvent
from receiver.vocabulary import EventState


def clamp(value: str | None, size: int = ID_SIZE) -> str | None:
    """Cut an id to its column: an absurd id must not stop the event from being stored."""
    return value[:size] if value is not None else None


def webhook_row(
    parsed: ParsedEvent,
    *,
    text: str,
    verification: str,
    headers: Mapping[str, str | bool],
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """The `events` columns a webhook is stored with (the caller adds dedup key and ids)."""
    return {
        "external_id": parsed.delivery_id,  # at most MAX_FIELD (200), the column's size
        "source": "webhook",
        "event_type": parsed.event_type[:100],
        "known": parsed.known,
        "channel_id": clamp(parsed.channel_id),
        "client_id": clamp(parsed.client_id),
        "phone_number": clamp(parsed.phone_number),
        "received_at": received_at,
        "raw_body": text,
        "headers": dict(headers),
        "verification": verification,
        "parsed": parsed.model_dump(exclude_none=True),
        "state": EventState.RECEIVED.value,
        "attempts": 0,
        "enrichment": "pending",
    }
