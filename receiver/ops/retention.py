"""Retention: drop what is bulky and no longer needed, keep the record.

After RETENTION_DAYS an event's raw body (the one large column) is set to NULL and
`raw_purged_at` stamped; the event row, its parsed fields, status changes, deliveries and
attempts all stay. Refused requests (`rejected_requests`) older than that are deleted. Only
events whose processing finished (processed or failed) lose their body: anything the
pipeline may still read is left alone. Work is done in bounded batches, each its own short
transaction, and running it twice (or in two processes at once) is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from receiver.db.tables import Event, RejectedRequest
from receiver.services import Services

log = logging.getLogger("receiver.ops.retention")

BATCH_SIZE = 500
MAX_BATCHES = 200  # one run touches at most 100,000 rows per table; the next run goes on
FINISHED_STATES = ("processed", "failed")


@dataclass(frozen=True)
class RetentionResult:
    raw_bodies_purged: int
    rejected_deleted: int
    complete: bool  # False when the batch limit stopped it before the end


async def run_retention(
    services: Services,
    *,
    older_than_days: int,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> RetentionResult:
    """Purge raw bodies and delete refused requests older than `older_than_days`."""
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1")
    now = services.clock()
    cutoff = now - timedelta(days=older_than_days)
    purged = deleted = 0
    complete = True
    for _ in range(max_batches):
        async with services.sessions.begin() as session:
            ids = list(
                (
                    await session.scalars(
                        select(Event.id)
                        .where(
                            Event.received_at < cutoff,
                            Event.state.in_(FINISHED_STATES),
                            Event.raw_purged_at.is_(None),
                        )
                        .order_by(Event.received_at)
                        .limit(batch_size)
                    )
                ).all()
            )
            if ids:
                # The WHERE repeats the test: a row purged by another run meanwhile is skipped.
                result = await session.execute(
                    update(Event)
                    .where(Event.id.in_(ids), Event.raw_purged_at.is_(None))
                    .values(raw_body=None, raw_purged_at=now)
                    .returning(Event.id)
                )
                purged += len(result.all())
        if len(ids) < batch_size:
            break
    else:
        complete = False
    for _ in range(max_batches):
        async with services.sessions.begin() as session:
            ids = list(
                (
                    await session.scalars(
                        select(RejectedRequest.id)
                        .where(RejectedRequest.received_at < cutoff)
                        .limit(batch_size)
                    )
                ).all()
            )
            if ids:
                result = await session.execute(
                    delete(RejectedRequest)
                    .where(RejectedRequest.id.in_(ids))
                    .returning(RejectedRequest.id)
                )
                deleted += len(result.all())
        if len(ids) < batch_size:
            break
    else:
        complete = False
    log.info(
        "retention: purged %d raw bodies, deleted %d refused requests older than %d days",
        purged,
        deleted,
        older_than_days,
        extra={"complete": complete},
    )
    return RetentionResult(raw_bodies_purged=purged, rejected_deleted=deleted, complete=complete)


async def purge_raw_bodies(services: Services, *, older_than_days: int) -> int:
    """Run retention (raw bodies and refused requests); return how many raw bodies it purged."""
    result = await run_retention(services, older_than_days=older_than_days)
    return result.raw_bodies_purged
