"""Long-lived resources, opened once per process (web lifespan, worker start-up) and passed down."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from receiver.db.engine import Engine, Sessions, create_engine, create_sessionmaker
from receiver.metrics import Metrics
from receiver.partner.client import PartnerClient, RateGate
from receiver.queue import JobQueue
from receiver.rate_slots import DatabaseSlots, SlotStore
from receiver.routing.rules_state import RulesHolder
from receiver.settings import Settings

log = logging.getLogger("receiver.services")

Role = Literal["web", "worker", "cli"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Handover(Protocol):
    """The outbox relay as the rest of a process sees it (built in `receiver.wiring`)."""

    queue_ok: bool
    last_sweep_at: datetime | None

    def events_committed(self, event_ids: Sequence[int], *, marked: bool = False) -> None: ...

    async def sweep(self) -> int: ...

    async def stop(self) -> None: ...


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: Sessions
    metrics: Metrics
    clock: Callable[[], datetime] = utc_now
    queue: JobQueue | None = None
    relay: Handover | None = None
    partner: PartnerClient | None = None
    rules_holder: RulesHolder | None = None
    slots: SlotStore | None = None  # where shared rate limits live (Redis, when there is one)
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def rules(self) -> RulesHolder:
        if self.rules_holder is None:
            raise RuntimeError("routing rules are not loaded in this process")
        return self.rules_holder

    def rate_slots(self) -> SlotStore:
        """The shared rate limits' slots: Redis when wired, else the database's rows."""
        return self.slots if self.slots is not None else DatabaseSlots(self.sessions)

    def require_queue(self) -> JobQueue:
        if self.queue is None:
            raise RuntimeError("no job queue in this process")
        return self.queue


def open_database(settings: Settings, *, runs_jobs: bool = False) -> tuple[Engine, Sessions]:
    # A process that runs jobs needs about a connection per concurrent job; capped so that
    # several workers stay inside PostgreSQL's default 100 connections (jobs wait briefly).
    pool_size = min(settings.worker_max_jobs, 20) + 5 if runs_jobs else 10
    engine = create_engine(settings.database_url, pool_size=pool_size)
    return engine, create_sessionmaker(engine)


def base_services(
    settings: Settings, *, metrics: Metrics | None = None, runs_jobs: bool = False
) -> Services:
    engine, sessions = open_database(settings, runs_jobs=runs_jobs)
    return Services(
        settings=settings, engine=engine, sessions=sessions, metrics=metrics or Metrics()
    )


def partner_client(
    settings: Settings, metrics: Metrics, *, rate: RateGate | None = None
) -> PartnerClient | None:
    """The Partner API client, or None when no partner id / credentials are configured.

    `rate` is the shared limit every request waits for (PARTNER_API_RATE, built in wiring).
    """
    if not settings.partner_api_configured or settings.d360_partner_id is None:
        return None

    def observe(operation: str, seconds: float, outcome: str) -> None:
        metrics.partner_api_latency.labels(operation=operation, outcome=outcome).observe(seconds)

    return PartnerClient(
        base_url=settings.d360_api_base,
        partner_id=settings.d360_partner_id,
        api_key=settings.d360_api_key.get_secret_value() if settings.d360_api_key else None,
        username=settings.d360_username,
        password=settings.d360_password.get_secret_value() if settings.d360_password else None,
        timeout=settings.d360_timeout,
        on_request=observe,
        rate=rate,
    )
