"""Store channel and client snapshots, and record status changes as rows.

Runs inside the event's processing transaction. A channel row carries a `version`; an update
is a compare-and-set on it (`UPDATE ... WHERE version = :seen`), and a status change row is
unique per (channel, version), so two workers that observe the same change record it once:
the loser of the compare-and-set re-reads and finds nothing left to change. An older
snapshot (by the channel's `modified_at`, else the time we fetched it) never overwrites a
newer one, so events arriving out of order cannot flip a status back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receiver.db.engine import Session
from receiver.db.store import channels as store
from receiver.db.tables import Channel, Client
from receiver.db.types import ID_SIZE
from receiver.partner.facts import channel_facts, client_facts
from receiver.pipeline.enrich import merge_client
from receiver.status import derive_status, is_newer, status_changed

MAX_CAS_ROUNDS = 5


def storable(value: Any) -> Any:
    """A JSON value PostgreSQL can store: NUL removed from every string and key."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {str(key).replace("\x00", ""): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def _fits(value: str | None) -> str | None:
    return value if value is None or len(value) <= ID_SIZE else None


@dataclass(frozen=True)
class ObservedChange:
    from_status: str | None
    to_status: str
    why: str


@dataclass(frozen=True)
class ChannelUpdate:
    channel: Channel | None  # the row as it stands after this event
    change: ObservedChange | None


async def store_client(
    session: Session, raw: dict[str, Any], *, now: datetime, source: str
) -> Client | None:
    """Upsert a client snapshot; a payload-sourced snapshot never replaces an API one."""
    raw = storable(raw)
    facts = client_facts(raw)
    if facts.id is None or len(facts.id) > ID_SIZE:
        return None  # not a client id we could ever have been sent for real
    values = {
        "name": facts.name,
        "organisation": facts.organisation,
        "contact_email": facts.contact_email,
        "partner_payload": facts.partner_payload,
        "snapshot": raw,
        "fetched_at": now,
        "source": source,
    }
    existing = await store.lock_client(session, client_id=facts.id)
    if existing is None:
        await store.insert_client(session, client_id=facts.id, values=values)
        return await store.get_client(session, client_id=facts.id, fresh=True)
    if source == "partner_api" or existing.source != "partner_api":
        # A channel's embedded `client` is a partial view (no `organisation`, say): what it
        # lacks keeps the stored value instead of being erased (merge_client's rule).
        merged = merge_client(listed=raw, embedded=storable(existing.snapshot))
        kept = client_facts(merged)
        values.update(
            name=kept.name,
            organisation=kept.organisation,
            contact_email=kept.contact_email,
            partner_payload=kept.partner_payload,
            snapshot=merged,
        )
        await store.update_client(session, client=existing, values=values)
    return existing


async def store_channel(
    session: Session,
    raw: dict[str, Any],
    *,
    event_id: int,
    now: datetime,
    enriched: bool,
) -> ChannelUpdate:
    """Apply a channel snapshot; record a status change when the derived status moved."""
    raw = storable(raw)
    facts = channel_facts(raw)
    if facts.id is None or len(facts.id) > ID_SIZE:
        return ChannelUpdate(channel=None, change=None)
    derived = derive_status(facts)
    stamp = facts.modified_at or now
    values = {
        "client_id": _fits(facts.client_id),
        "phone_number": _fits(facts.phone_number),
        "display_name": facts.phone_name,
        "status": derived.status,
        "status_why": derived.why,
        "snapshot": raw,
        "snapshot_at": stamp,
        "fetched_at": now,
        "enriched": enriched,
    }
    for _ in range(MAX_CAS_ROUNDS):
        current = await store.read_channel(session, channel_id=facts.id)
        if current is None:
            if not await store.insert_channel(session, channel_id=facts.id, values=values):
                continue  # another worker created it first: read theirs and compare
            first = ObservedChange(None, derived.status, derived.why)
            await _record_change(session, facts.id, first, event_id=event_id, now=now, version=1)
            return ChannelUpdate(
                channel=await store.get_channel(session, channel_id=facts.id, fresh=True),
                change=first,
            )
        # The Partner API's answer always replaces a snapshot taken from a webhook payload
        # (whose stamp may be our clock); otherwise an older snapshot never replaces a newer
        # one, and a payload never replaces the API's answer of the same moment.
        api_over_payload = enriched and not current.enriched
        if not api_over_payload and (
            not is_newer(current=current.snapshot_at, candidate=stamp)
            or (current.enriched and not enriched and stamp <= current.snapshot_at)
        ):
            return ChannelUpdate(channel=current, change=None)
        previous_status = current.status  # the "from" of a change below
        new_version = await store.update_channel_if_version(session, channel=current, values=values)
        if new_version is None:
            continue  # lost the compare-and-set: re-read and decide again
        change: ObservedChange | None = None
        if status_changed(previous_status, derived):
            change = ObservedChange(previous_status, derived.status, derived.why)
            await _record_change(
                session, facts.id, change, event_id=event_id, now=now, version=new_version
            )
        return ChannelUpdate(channel=current, change=change)
    raise RuntimeError(f"channel {facts.id}: too much contention to apply a snapshot")


async def _record_change(
    session: Session,
    channel_id: str,
    change: ObservedChange,
    *,
    event_id: int,
    now: datetime,
    version: int,
) -> None:
    await store.insert_status_change(
        session,
        channel_id=channel_id,
        from_status=change.from_status,
        to_status=change.to_status,
        why=change.why,
        event_id=event_id,
        changed_at=now,
        channel_version=version,
    )
