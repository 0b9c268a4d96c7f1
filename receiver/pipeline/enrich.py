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

import orjson

from receiver.db.tables import Event
from receiver.partner.client import PartnerAPIError, PartnerClient
from receiver.partner.facts import channel_facts, client_facts
from receiver.vocabulary import CLIENT_EVENTS, WATCH_CLIENT_EVENTS

RECONCILE_SOURCE = "reconcile"

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
    if event.source == RECONCILE_SOURCE:
        # Reconciliation recorded the Partner API's own answer of moments ago (or, for a
        # channel no longer listed, its last snapshot marked so): asking again would spend
        # the shared rate limit on what we hold, and find nothing for a deleted channel.
        return reconciled(event)
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
        client_id = channel_facts(channel).client_id if channel else event.client_id
        embedded = embedded_client(channel, client_id=client_id)
        has_contact = embedded is not None and isinstance(embedded.get("contact_info"), dict)
        client, client_error = embedded, None
        if client_id is not None and (needs_client or not has_contact):
            try:
                listed = await partner.get_client(client_id)
            except PartnerAPIError as exc:
                # The channel (and its embedded client) came from the same API a moment ago:
                # a clients lookup refused for good must not throw them away.
                if not exc.permanent or channel is None:
                    raise
                listed, client_error = None, f"clients lookup: {describe(exc)}"[:500]
                log.warning("client lookup failed for good: %s", describe(exc))
            client = merge_client(listed=listed, embedded=embedded)
    except PartnerAPIError as exc:
        if exc.permanent:
            log.warning("enrichment failed for good: %s", describe(exc))
            return Enrichment(state="not_enriched", error=describe(exc))
        raise EnrichmentUnavailableError(exc) from exc
    if event.event_type in CLIENT_EVENTS:
        return Enrichment(state="enriched" if client else "not_found", client=client)
    if channel is None:
        return Enrichment(state="not_found", client=client)
    return Enrichment(state="enriched", channel=channel, client=client, error=client_error)


def reconciled(event: Event) -> Enrichment:
    """The enrichment a reconciliation event carries: its envelope's `data` (pure)."""
    try:
        body = orjson.loads(event.raw_body or "")
    except orjson.JSONDecodeError:
        body = None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return Enrichment(state="not_enriched", error="reconciliation event without its object")
    if event.event_type in CLIENT_EVENTS or event.event_type in WATCH_CLIENT_EVENTS:
        return Enrichment(state="enriched", client=data)
    client_id = channel_facts(data).client_id
    return Enrichment(
        state="enriched", channel=data, client=embedded_client(data, client_id=client_id)
    )


def embedded_client(
    channel: dict[str, Any] | None, *, client_id: str | None
) -> dict[str, Any] | None:
    """The channel's embedded `client` object, when it is the channel's owner (pure)."""
    embedded = channel.get("client") if channel is not None else None
    if not isinstance(embedded, dict):
        return None
    own_id = client_facts(embedded).id
    if own_id is not None and client_id is not None and own_id != client_id:
        return None  # another client's object: its email must never reach this one
    if own_id is None and client_id is not None:
        return {**embedded, "id": client_id}
    return embedded


def merge_client(
    *, listed: dict[str, Any] | None, embedded: dict[str, Any] | None
) -> dict[str, Any] | None:
    """One client object from the clients list and a channel's embedded `client` (pure).

    The clients list wins field by field where it has a value; the embedded object fills the
    gaps (absent, null or blank fields, nested objects such as `contact_info` merged the same
    way). Either may be None: the other is used as it is.
    """
    if listed is None or embedded is None:
        return listed if listed is not None else embedded
    merged = dict(embedded)
    for key, value in listed.items():
        fallback = merged.get(key)
        if isinstance(value, dict) and isinstance(fallback, dict):
            merged[key] = merge_client(listed=value, embedded=fallback)
        elif not _blank(value) or key not in merged:
            merged[key] = value
    return merged


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


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
