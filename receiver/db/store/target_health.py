"""target_health: consecutive failures per named target, and the once-only failing notices.

Every statement runs inside the transaction that records a delivery attempt's outcome.
The notices are claimed by conditional updates (`told_failing_at IS NULL`, `IS NOT NULL`):
on PostgreSQL a second worker's update waits for the first one's row lock and then no
longer matches; SQLite serialises writers outright. So a target is announced failing once
per run of failures, and recovered once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.dialect import upsert
from receiver.db.tables import TargetHealth


@dataclass(frozen=True)
class FailingRun:
    """A target's current run of failures, as the notice about it needs it."""

    consecutive_failures: int
    failing_since: datetime | None


async def count_failure(session: AsyncSession, *, target: str, now: datetime) -> int:
    """Add one failed attempt to the target's run; return the run's length."""
    statement = upsert(session, TargetHealth).values(
        target_name=target, consecutive_failures=1, failing_since=now
    )
    failures: int = (
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["target_name"],
                set_={
                    "consecutive_failures": TargetHealth.consecutive_failures + 1,
                    # A run starts at its first failure (count_success clears it).
                    "failing_since": func.coalesce(TargetHealth.failing_since, now),
                },
            ).returning(TargetHealth.consecutive_failures)
        )
    ).scalar_one()
    return failures


async def claim_failing_notice(
    session: AsyncSession, *, target: str, threshold: int, now: datetime
) -> FailingRun | None:
    """Mark the run announced if it reached `threshold` and was not announced; else None."""
    row = (
        await session.execute(
            update(TargetHealth)
            .where(
                TargetHealth.target_name == target,
                TargetHealth.consecutive_failures >= threshold,
                TargetHealth.told_failing_at.is_(None),
            )
            .values(told_failing_at=now)
            .returning(TargetHealth.consecutive_failures, TargetHealth.failing_since)
        )
    ).one_or_none()
    return None if row is None else FailingRun(row[0], row[1])


async def count_success(session: AsyncSession, *, target: str, now: datetime) -> FailingRun | None:
    """End the target's run of failures; return it when it had been announced (tell once).

    A target without failures is not written at all: the common case costs one indexed
    read that finds nothing (the row, when there is a run to end, is locked by it).
    """
    run = (
        await session.execute(
            select(TargetHealth.failing_since, TargetHealth.told_failing_at)
            .where(
                TargetHealth.target_name == target,
                or_(
                    TargetHealth.consecutive_failures > 0,
                    TargetHealth.told_failing_at.is_not(None),
                ),
            )
            .with_for_update()
        )
    ).one_or_none()
    if run is None:
        return None
    since, told = run
    if told is not None:
        # Still claimed conditionally: whoever clears `told_failing_at` tells the recovery.
        announced = (
            await session.execute(
                update(TargetHealth)
                .where(
                    TargetHealth.target_name == target, TargetHealth.told_failing_at.is_not(None)
                )
                .values(
                    consecutive_failures=0,
                    failing_since=None,
                    told_failing_at=None,
                    told_recovered_at=now,
                )
                .returning(TargetHealth.target_name)
            )
        ).one_or_none()
        if announced is not None:
            return FailingRun(0, since)
    await session.execute(
        update(TargetHealth)
        .where(TargetHealth.target_name == target, TargetHealth.consecutive_failures > 0)
        .values(consecutive_failures=0, failing_since=None)
    )
    return None
