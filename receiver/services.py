"""Long-lived resources, opened once per process (web lifespan, worker start-up) and passed down."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from receiver.db.engine import create_engine, create_sessionmaker
from receiver.jobs.queue import JobQueue
from receiver.jobs.relay import Relay
from receiver.metrics import Metrics
from receiver.settings import Settings

log = logging.getLogger("receiver.services")

Role = Literal["web", "worker", "cli"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metrics: Metrics
    clock: Callable[[], datetime] = utc_now
    queue: JobQueue | None = None
    relay: Relay | None = None
    extras: dict[str, object] = field(default_factory=dict)

    def require_queue(self) -> JobQueue:
        if self.queue is None:
            raise RuntimeError("no job queue in this process")
        return self.queue


def open_database(settings: Settings) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.database_url)
    return engine, create_sessionmaker(engine)


def base_services(settings: Settings, *, metrics: Metrics | None = None) -> Services:
    engine, sessions = open_database(settings)
    return Services(
        settings=settings, engine=engine, sessions=sessions, metrics=metrics or Metrics()
    )
