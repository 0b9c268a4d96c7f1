"""The number health watcher: each number with a key, once per HEALTH_INTERVAL, spread over it.

360dialog caches a number's health for 5 minutes and asks not to be called more often. That
limit lives in the database: before each request a conditional update moves the number's
`requested_at` to now only if the previous request is at least 5 minutes old
(`store.claim_request`), so the scheduler, a second process and `hub-receiver health check`
together never ask twice within 5 minutes. A change of health becomes one
`number_health_changed` event (rules decide who hears of it); a failure or a body of an
unknown shape is logged and tried again at the next check, never alerted on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from receiver.db.store import channels as channel_store
from receiver.db.store import health as store
from receiver.db.tables import NumberHealth
from receiver.partner.facts import channel_facts
from receiver.partner.health import (
    CLOUD_API,
    HEALTHY,
    ON_PREMISE,
    HealthCheckError,
    HealthClient,
    Platform,
    Reading,
    UnknownShapeError,
    describe,
    platform_of,
)
from receiver.services import Services
from receiver.settings import HEALTH_MIN_INTERVAL, Settings
from receiver.watch.events import WatchEvent, record_watch_events
from receiver.watch.keys import KeysError, decrypt, key_box

log = logging.getLogger("receiver.watch.health")

EVENT_TYPE = "number_health_changed"
FLOOR = timedelta(seconds=HEALTH_MIN_INTERVAL)
CONCURRENCY = 10
BATCH = 1000  # due numbers taken per tick; the rest are due on the next tick


@dataclass(frozen=True, slots=True)
class CheckResult:
    channel_id: str
    outcome: str  # checked | changed | too_soon | failed
    health: str | None = None
    previous: str | None = None
    requested_at: datetime | None = None
    message: str | None = None

    def line(self) -> str:
        if self.outcome == "too_soon" and self.requested_at is not None:
            return (
                f"{self.channel_id}  checked at {self.requested_at:%H:%M}, "
                f"next after {self.requested_at + FLOOR:%H:%M} (UTC)"
            )
        if self.outcome == "failed":
            return f"{self.channel_id}  not checked: {self.message}"
        if self.outcome == "changed":
            return f"{self.channel_id}  {self.health} (was {self.previous or 'unknown'})"
        return f"{self.channel_id}  {self.health or 'unknown'}"


class HealthWatcher:
    name = "health"

    def interval(self, settings: Settings) -> float | None:
        # Ticks much shorter than HEALTH_INTERVAL: each tick checks only the numbers due,
        # which keeps the requests spread over the interval.
        return max(15.0, settings.health_interval / 20)

    async def has_work(self, services: Services) -> bool:
        async with services.sessions() as session:
            return bool(await store.keyed_numbers(session, due_at=services.clock(), limit=1))

    async def run_once(self, services: Services) -> object:
        results = await run_pass(services, due_only=True)
        return {r.outcome: sum(1 for x in results if x.outcome == r.outcome) for r in results}


async def run_pass(
    services: Services, *, due_only: bool, channel_ids: Sequence[str] | None = None
) -> list[CheckResult]:
    """Check numbers now: the due ones (`due_only`), else every number with a key."""
    now = services.clock()
    async with services.sessions() as session:
        rows = await store.keyed_numbers(
            session, due_at=now if due_only else None, limit=BATCH if due_only else None
        )
    if channel_ids is not None:
        wanted = set(channel_ids)
        rows = [row for row in rows if row.channel_id in wanted]
    if not rows:
        return []
    try:
        box = key_box(services.settings)
    except KeysError as exc:
        log.error("number health not checked: %s", exc)
        return [CheckResult(row.channel_id, "failed", message=str(exc)) for row in rows]
    settings = services.settings
    client = HealthClient(
        waba_base=settings.d360_waba_base,
        waba_v2_base=settings.d360_waba_v2_base,
        timeout=settings.d360_timeout,
    )
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(channel_id: str) -> CheckResult:
        async with gate:
            return await check_number(services, client=client, box=box, channel_id=channel_id)

    try:
        return list(await asyncio.gather(*(one(row.channel_id) for row in rows)))
    finally:
        await client.aclose()


async def check_number(
    services: Services, *, client: HealthClient, box: Any, channel_id: str
) -> CheckResult:
    now = services.clock()
    interval = timedelta(seconds=services.settings.health_interval)
    async with services.sessions() as session, session.begin():
        claimed = await store.claim_request(
            session,
            channel_id=channel_id,
            now=now,
            not_after=now - FLOOR,
            next_check_at=now + interval,
        )
        row = await store.read_number(session, channel_id=channel_id)
        channel = await channel_store.read_channel(session, channel_id=channel_id)
    if row is None or row.api_key is None:
        return CheckResult(channel_id, "failed", message="its key was removed")
    if not claimed:
        return CheckResult(channel_id, "too_soon", health=row.health, requested_at=row.requested_at)
    snapshot: dict[str, Any] = dict(channel.snapshot) if channel is not None else {}
    known = platform_of(channel_facts(snapshot).hosting_platform_type) if snapshot else None
    platform: Platform = known or (ON_PREMISE if row.platform == ON_PREMISE else CLOUD_API)
    try:
        reading = await client.check(api_key=decrypt(box, row.api_key), platform=platform)
    except (HealthCheckError, UnknownShapeError, KeysError) as exc:
        return await _failed(services, row=row, platform=platform, known=known, exc=exc, now=now)
    previous = row.health
    if reading.health != previous:
        await _record_change(services, row=row, reading=reading, channel=channel)
    async with services.sessions() as session, session.begin():
        await store.save_result(
            session,
            channel_id=channel_id,
            requested_at=now,
            values={
                "health": reading.health,
                "health_detail": reading.detail(),
                "platform": reading.platform,
                "checked_at": now,
                "last_error": None,
            },
        )
    outcome = "changed" if reading.health != previous else "checked"
    return CheckResult(channel_id, outcome, health=reading.health, previous=previous)


async def _failed(
    services: Services,
    *,
    row: NumberHealth,
    platform: Platform,
    known: Platform | None,
    exc: Exception,
    now: datetime,
) -> CheckResult:
    message = str(exc)
    values: dict[str, Any] = {"last_error": message[:500]}
    if isinstance(exc, HealthCheckError) and exc.not_found and known is None:
        # The channel does not say where it is hosted: a 404 from one endpoint means the
        # other one, asked at the next check (never a second request within 5 minutes).
        other: Platform = ON_PREMISE if platform == CLOUD_API else CLOUD_API
        values["platform"] = other
        message += f"; asking the {other} endpoint at the next check"
        values["last_error"] = message[:500]
    if isinstance(exc, UnknownShapeError):
        log.warning(
            "number health: a body of an unknown shape, nothing recorded",
            extra={"channel_id": row.channel_id, "problem": message},
        )
    else:
        log.warning(
            "number health check failed; tried again at the next check",
            extra={"channel_id": row.channel_id, "problem": message},
        )
    async with services.sessions() as session, session.begin():
        await store.save_result(session, channel_id=row.channel_id, requested_at=now, values=values)
    return CheckResult(row.channel_id, "failed", health=row.health, message=message)


async def _record_change(
    services: Services, *, row: NumberHealth, reading: Reading, channel: Any
) -> None:
    if row.health is None and reading.health in HEALTHY:
        return  # the first look at a healthy number is news to nobody
    detail = reading.detail()
    since = row.checked_at.isoformat() if row.checked_at else "never"
    data: dict[str, Any] = dict(channel.snapshot) if channel is not None else {}
    data.setdefault("id", row.channel_id)
    item = WatchEvent(
        event_type=EVENT_TYPE,
        source="health",
        # The same change seen again after a crash (health not yet saved) gets the same key.
        dedup_key=f"{row.channel_id}:{row.health}:{reading.health}:{since}",
        data=data,
        channel_id=row.channel_id,
        client_id=channel.client_id if channel is not None else None,
        phone_number=channel.phone_number if channel is not None else None,
        fields={
            "health_from": row.health,
            "health_to": reading.health,
            "health_detail": describe(detail),
            "health_platform": reading.platform,
            "health_errors": detail["errors"],
        },
    )
    await record_watch_events(services, [item])
    log.info(
        "number health changed",
        extra={"channel_id": row.channel_id, "from": row.health, "to": reading.health},
    )
