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

from receiver.db.store import maintenance
from receiver.services import Services

log = logging.getLogger("receiver.ops.retention")

BATCH_SIZE = 500
MAX_BATCHES = 200  # one run touches at most 100,000 rows per table; the next run goes on


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
        batch = await maintenance.purge_raw_body_batch(
            services.sessions, received_before=cutoff, now=now, batch_size=batch_size
        )
        purged += batch.changed
        if batch.found < batch_size:
            break
    else:
        complete = False
    for _ in range(max_batches):
        batch = await maintenance.delete_rejected_batch(
            services.sessions, received_before=cutoff, batch_size=batch_size
        )
        deleted += batch.changed
        if batch.found < batch_size:
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
