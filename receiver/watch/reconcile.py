"""Reconciliation: page through every channel and client, record what no webhook announced.

One pass lists `GET /partners/{pid}/channels` and `/clients` page by page (`limit`/`offset`),
checking that every page reports the same `total` and that the pages add up to it; a list
that changed while we paged is listed again (a log line says so), never half-read. Each
channel's status is derived by the same code as enrichment (`receiver.status`) and
compared with the stored one; a difference, a channel never seen, a stored channel no
longer listed (status `deleted`) and a client never seen each become one event
(`channel_reconciled`, `client_reconciled`) whose dedup key is deterministic, so a second
pass or process records nothing again. Processing stores the snapshot (older never
overwrites newer) and the status change, and routes it like a webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.db.store import watch as store
from receiver.partner.client import PartnerAPIError, PartnerClient
from receiver.partner.facts import LISTED_KEY, channel_facts, client_facts
from receiver.pipeline.snapshots import storable
from receiver.services import Services
from receiver.settings import Settings
from receiver.status import ChannelStatus, derive_status, is_newer
from receiver.watch.events import WatchEvent, record_watch_events

log = logging.getLogger("receiver.watch.reconcile")

SOURCE = "reconcile"
PAGE_SIZE = 100
LIST_ATTEMPTS = 3


class ListChangedError(Exception):
    """The list changed while we paged through it (total moved, or pages did not add up)."""


Page = Callable[[int, int], Awaitable[dict[str, Any]]]


async def list_all(
    fetch: Page, *, key: str, what: str, page_size: int = PAGE_SIZE
) -> list[dict[str, Any]]:
    """Every item of a paged list; ListChangedError when it changed under us."""
    items: list[dict[str, Any]] = []
    total: int | None = None
    offset = 0
    while True:
        page = await fetch(page_size, offset)
        found: list[dict[str, Any]] = page[key]
        reported = page.get("total")
        if not isinstance(reported, int) or isinstance(reported, bool):
            raise ListChangedError(f"{what}: page at offset {offset} has no numeric total")
        if total is None:
            total = reported
        elif reported != total:
            raise ListChangedError(f"{what}: total went from {total} to {reported} while paging")
        items.extend(found)
        offset += len(found)
        if not found or offset >= total:
            break
    ids = [item.get("id") for item in items]
    if len(items) != total or len(set(ids)) != len(ids):
        raise ListChangedError(
            f"{what}: pages held {len(items)} items ({len(set(ids))} distinct), total says {total}"
        )
    return items


async def list_stable(
    fetch: Page, *, key: str, what: str, page_size: int = PAGE_SIZE
) -> list[dict[str, Any]]:
    """`list_all`, listed again (up to LIST_ATTEMPTS) while the list keeps changing."""
    for attempt in range(1, LIST_ATTEMPTS + 1):
        try:
            return await list_all(fetch, key=key, what=what, page_size=page_size)
        except ListChangedError as exc:
            if attempt == LIST_ATTEMPTS:
                raise
            log.warning("reconcile: %s; listing again (attempt %d)", exc, attempt + 1)
    raise AssertionError("unreachable")


@dataclass
class Pass:
    """What one reconciliation pass saw and found."""

    channels_listed: int = 0
    clients_listed: int = 0
    findings: list[WatchEvent] = field(default_factory=list)
    recorded: list[int] = field(default_factory=list)
    baseline: bool = False  # the first pass: what was never seen is learned, not announced

    def summary(self) -> dict[str, Any]:
        return {
            "channels_listed": self.channels_listed,
            "clients_listed": self.clients_listed,
            "found": len(self.findings),
            "recorded": len(self.recorded),
            "baseline": self.baseline,
            "findings": [
                {
                    "event": f.event_type,
                    "channel_id": f.channel_id,
                    "client_id": f.client_id,
                    **f.fields,
                }
                for f in self.findings
            ],
        }


BASELINE_MILESTONE = "reconcile:baseline"
BASELINE_FIELD = "baseline"


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "-"


def channel_findings(
    listed: list[dict[str, Any]],
    known: dict[str, tuple[str | None, datetime]],
    *,
    baseline: bool = False,
) -> list[WatchEvent]:
    """Listed channels whose derived status is new or differs from the stored one (pure).

    On the `baseline` (first) pass a channel never seen is learned, not announced: the
    event carries `baseline: true` and routing tells nobody (`pipeline.route.silenced`).
    """
    found: list[WatchEvent] = []
    for raw in listed:
        channel = storable(raw)
        facts = channel_facts(channel)
        if facts.id is None:
            continue
        derived = derive_status(facts)
        stored = known.get(facts.id)
        if stored is not None:
            stored_status, stamp = stored
            if stored_status == derived.status:
                continue
            if facts.modified_at is not None and not is_newer(
                current=stamp, candidate=facts.modified_at
            ):
                continue  # what we hold is newer than this listing: never step back
        before = stored[0] if stored is not None else None
        found.append(
            WatchEvent(
                event_type="channel_reconciled",
                source=SOURCE,
                dedup_key=f"{facts.id}:{_iso(facts.modified_at)}:{before}->{derived.status}",
                data=channel,
                channel_id=facts.id,
                client_id=facts.client_id,
                phone_number=facts.phone_number,
                fields={
                    "status_from": before,
                    "status_to": derived.status,
                    "why": derived.why,
                    **({BASELINE_FIELD: True} if baseline and stored is None else {}),
                },
            )
        )
    return found


def deleted_finding(
    channel_id: str, *, status: str | None, stamp: datetime, snapshot: dict[str, Any], now: datetime
) -> WatchEvent:
    """A stored channel the Partner API no longer lists: its last snapshot, marked unlisted."""
    data = {**snapshot, LISTED_KEY: False, "modified_at": now.isoformat()}
    facts = channel_facts(data)
    return WatchEvent(
        event_type="channel_reconciled",
        source=SOURCE,
        dedup_key=f"{channel_id}:{stamp.isoformat()}:{status}->{ChannelStatus.DELETED.value}",
        data=data,
        channel_id=channel_id,
        client_id=facts.client_id,
        phone_number=facts.phone_number,
        fields={
            "status_from": status,
            "status_to": ChannelStatus.DELETED.value,
            "why": "no longer listed by the Partner API",
        },
    )


def client_findings(
    listed: list[dict[str, Any]], known: set[str], *, baseline: bool = False
) -> list[WatchEvent]:
    found: list[WatchEvent] = []
    for raw in listed:
        client = storable(raw)
        client_id = client_facts(client).id
        if client_id is None or client_id in known:
            continue
        found.append(
            WatchEvent(
                event_type="client_reconciled",
                source=SOURCE,
                dedup_key=f"{client_id}:new",
                data=client,
                client_id=client_id,
                fields={BASELINE_FIELD: True} if baseline else {},
            )
        )
    return found


async def reconcile(
    services: Services, *, dry_run: bool = False, page_size: int = PAGE_SIZE
) -> Pass:
    """One pass; with `dry_run`, find but record nothing. PartnerAPIError if the API fails."""
    partner = services.partner
    if partner is None:
        raise RuntimeError("the Partner API is not configured (D360_PARTNER_ID and a key)")
    channels = await list_stable(
        _pages(partner, "channels"),
        key="partner_channels",
        what="channels list",
        page_size=page_size,
    )
    clients = await list_stable(
        _pages(partner, "clients"), key="clients", what="clients list", page_size=page_size
    )
    result = Pass(channels_listed=len(channels), clients_listed=len(clients))
    async with services.sessions() as session:
        known = await store.known_channels(session)
        known_clients = await store.known_client_ids(session)
        # The first complete pass learns the estate as it is: thousands of numbers that
        # already exist are not news, so they are stored but announced to nobody.
        result.baseline = not await store.milestone_reached(session, name=BASELINE_MILESTONE)
        result.findings.extend(client_findings(clients, known_clients, baseline=result.baseline))
        result.findings.extend(channel_findings(channels, known, baseline=result.baseline))
        listed_ids = {channel_facts(c).id for c in channels}
        now = services.clock()
        for channel_id, (status, stamp) in sorted(known.items()):
            if channel_id in listed_ids or status == ChannelStatus.DELETED:
                continue
            snapshot = await store.channel_snapshot(session, channel_id=channel_id) or {
                "id": channel_id
            }
            result.findings.append(
                deleted_finding(channel_id, status=status, stamp=stamp, snapshot=snapshot, now=now)
            )
    if not dry_run and result.findings:
        result.recorded = await record_watch_events(services, result.findings)
    if not dry_run and result.baseline:
        async with services.sessions.begin() as session:
            await store.mark_milestone(session, name=BASELINE_MILESTONE, now=services.clock())
    log.info(
        "reconcile pass: %d channels, %d clients listed; %d found, %d recorded",
        result.channels_listed,
        result.clients_listed,
        len(result.findings),
        len(result.recorded),
    )
    return result


def _pages(partner: PartnerClient, resource: str) -> Page:
    async def fetch(limit: int, offset: int) -> dict[str, Any]:
        if resource == "channels":
            return await partner.list_channels(limit=limit, offset=offset, sort="id")
        return await partner.list_clients(limit=limit, offset=offset, sort="id")

    return fetch


class Reconciler:
    """The scheduler's watcher: one pass every RECONCILE_INTERVAL."""

    name = "reconcile"

    def interval(self, settings: Settings) -> float | None:
        if not settings.partner_api_configured:
            return None
        return settings.reconcile_interval

    async def run_once(self, services: Services) -> object:
        try:
            return (await reconcile(services)).summary() | {"findings": None}
        except (PartnerAPIError, ListChangedError) as exc:
            # Retried next interval; nothing half-read was recorded.
            log.warning("reconcile pass abandoned: %s; trying again next interval", exc)
            return {"error": str(exc)}
