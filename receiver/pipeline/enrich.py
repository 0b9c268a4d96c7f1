"""Enrichment: ask the Partner API what an event's channel (and client) really look like.

Network only; nothing here writes. The decision of what to do with the answer, including
confirming or rejecting a permission callback's claim, is `judge_claim` (pure).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from receiver.db.tables import Event
from receiver.ingest.payload import CLIENT_EVENTS
from receiver.partner.client import PartnerAPIError, PartnerClient
from receiver.partner.facts import channel_facts

log = logging.getLogger("receiver.enrich")

EnrichmentState = Literal["enriched", "not_found", "not_enriched", "not_configured", "not_needed"]
RETRY_BASE = 2.0
RETRY_MAX = 120.0


@dataclass(frozen=True)
class Enrichment:
    state: EnrichmentState
    channel: dict[str, Any] | None = None  # Partner API shape
    client: dict[str, Any] | None = None
    error: str | None = None


class EnrichmentUnavailableError(Exception):
    """The Partner API failed transiently; the caller decides between retrying and moving on."""

    def __init__(self, error: PartnerAPIError) -> None:
        super().__init__(describe(error))
        self.error = error


def describe(error: PartnerAPIError) -> str:
    detail = f": {error.developer_message}" if error.developer_message else ""
    return f"Partner API {error.kind} ({error.status_code or 'no status'}){detail}"[:500]


def retry_delay(attempt: int, *, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, capped (pure but for the random source)."""
    ceiling = min(RETRY_MAX, RETRY_BASE * (2 ** max(0, attempt - 1)))
    return (rng or random.Random()).uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter


def give_up_at(received_at: datetime, max_wait: float) -> datetime:
    return received_at + timedelta(seconds=max_wait)


async def enrich(partner: PartnerClient | None, event: Event, *, known_client: bool) -> Enrichment:
    """Fetch the channel (and client when needed). Raises EnrichmentUnavailableError."""
    if partner is None:
        return Enrichment(state="not_configured")
    channel_id = event.channel_id
    needs_client = event.event_type in CLIENT_EVENTS or (
        event.client_id is not None and not known_client
    )
    if channel_id is None and event.phone_number is None and not needs_client:
        return Enrichment(state="not_needed")
    try:
        channel: dict[str, Any] | None = None
        if event.event_type not in CLIENT_EVENTS:
            if channel_id is not None:
                channel = await partner.get_channel(channel_id)
            elif event.phone_number is not None:
                channel = await partner.find_channel_by_phone(event.phone_number)
        client: dict[str, Any] | None = None
        client_id = channel_facts(channel).client_id if channel else event.client_id
        embedded = channel.get("client") if channel else None
        has_contact = isinstance(embedded, dict) and isinstance(embedded.get("contact_info"), dict)
        if client_id is not None and (needs_client or not has_contact):
            client = await partner.get_client(client_id)
        elif has_contact and isinstance(embedded, dict):
            client = embedded
    except PartnerAPIError as exc:
        if exc.permanent:
            log.warning("enrichment failed for good: %s", describe(exc))
            return Enrichment(state="not_enriched", error=describe(exc))
        raise EnrichmentUnavailableError(exc) from exc
    if event.event_type in CLIENT_EVENTS:
        return Enrichment(state="enriched" if client else "not_found", client=client)
    if channel is None:
        return Enrichment(state="not_found", client=client)
    return Enrichment(state="enriched", channel=channel, client=client)


@dataclass(frozen=True)
class ClaimVerdict:
    claim: Literal["confirmed", "rejected", "unconfirmed"]
    reason: str | None


def judge_claim(*, claimed_client: str | None, enrichment: Enrichment) -> ClaimVerdict:
    """Confirm a permission callback's claim only when the Partner API agrees with it."""
    if enrichment.state in ("not_enriched", "not_configured"):
        return ClaimVerdict("unconfirmed", "the Partner API could not be asked")
    if enrichment.state == "not_found" or enrichment.channel is None:
        return ClaimVerdict("rejected", "the Partner API knows no such channel")
    actual = channel_facts(enrichment.channel).client_id
    if actual != claimed_client:
        return ClaimVerdict("rejected", "the channel belongs to another client than the link says")
    return ClaimVerdict("confirmed", None)
