"""Leases and shared rate slots: the rows that let many processes act as one.

`take_lease` is a conditional upsert (free when expired or already ours), so of N processes
asking at once exactly one gets it. `reserve_slot` hands out start times of a shared rate
limit: each call moves `next_at` on by one interval, atomically, and returns the start of
the slot it took, so processes that share the database share the limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Interval, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.dialect import dialect_name, upsert
from receiver.db.tables import Channel, Client, Lease, RateSlot
from receiver.db.types import UTCDateTime

NAME_SIZE = 100


async def take_lease(
    session: AsyncSession, *, name: str, holder: str, until: datetime, now: datetime
) -> bool:
    """Hold lease `name` until `until` if free (expired, or ours); False while another holds it."""
    statement = (
        upsert(session, Lease)
        .values(name=name[:NAME_SIZE], holder=holder[:NAME_SIZE], until=until)
        .on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": holder[:NAME_SIZE], "until": until},
            where=(Lease.until <= now) | (Lease.holder == holder[:NAME_SIZE]),
        )
        .returning(Lease.name)
    )
    return (await session.execute(statement)).first() is not None


async def release_lease(session: AsyncSession, *, name: str, holder: str) -> bool:
    """Give lease `name` up if `holder` holds it; False if it was not ours."""
    result = await session.execute(
        delete(Lease)
        .where(Lease.name == name[:NAME_SIZE], Lease.holder == holder[:NAME_SIZE])
        .returning(Lease.name)
    )
    return result.first() is not None


async def lease_holder(session: AsyncSession, *, name: str, now: datetime) -> str | None:
    """Who holds lease `name` now (reads only)."""
    return await session.scalar(
        select(Lease.holder).where(Lease.name == name[:NAME_SIZE], Lease.until > now)
    )


async def reserve_slot(
    session: AsyncSession, *, name: str, interval: float, now: datetime
) -> datetime:
    """Take the next slot of rate limit `name`; return when it starts (now or later).

    next_at becomes max(next_at, now) + interval; the returned start is max(next_at, now).
    """
    step = timedelta(seconds=interval)
    if dialect_name(session) == "postgresql":
        # One statement: the row lock of the upsert serialises concurrent reservations.
        statement = (
            upsert(session, RateSlot)
            .values(name=name, next_at=now + step)
            .on_conflict_do_update(
                index_elements=["name"],
                set_={
                    "next_at": func.greatest(RateSlot.next_at, literal(now, UTCDateTime()))
                    + literal(step, Interval())
                },
            )
            .returning(RateSlot.next_at)
        )
        new_next = (await session.execute(statement)).scalar_one()
        return new_next - step
    # SQLite: the transaction began IMMEDIATE (db/engine.py), so it holds the write lock and
    # this read-then-write cannot interleave with another process's.
    current = await session.scalar(select(RateSlot.next_at).where(RateSlot.name == name))
    start = max(current, now) if current is not None else now
    await _set_next_at(session, name=name, next_at=start + step)
    return start


async def push_back_slot(session: AsyncSession, *, name: str, until: datetime) -> None:
    """Start no slot of `name` before `until` (Retry-After): next_at = max(next_at, until)."""
    if dialect_name(session) == "postgresql":
        await session.execute(
            upsert(session, RateSlot)
            .values(name=name, next_at=until)
            .on_conflict_do_update(
                index_elements=["name"],
                set_={"next_at": func.greatest(RateSlot.next_at, literal(until, UTCDateTime()))},
            )
        )
        return
    current = await session.scalar(select(RateSlot.next_at).where(RateSlot.name == name))
    if current is None or current < until:
        await _set_next_at(session, name=name, next_at=until)


async def _set_next_at(session: AsyncSession, *, name: str, next_at: datetime) -> None:
    await session.execute(
        upsert(session, RateSlot)
        .values(name=name, next_at=next_at)
        .on_conflict_do_update(index_elements=["name"], set_={"next_at": next_at})
    )


async def known_channels(session: AsyncSession) -> dict[str, tuple[str | None, datetime]]:
    """Every stored channel: id -> (derived status, snapshot stamp). Reconciliation compares."""
    rows = await session.execute(select(Channel.id, Channel.status, Channel.snapshot_at))
    return {channel_id: (status, stamp) for channel_id, status, stamp in rows.all()}


async def channel_snapshot(session: AsyncSession, *, channel_id: str) -> dict[str, Any] | None:
    return await session.scalar(select(Channel.snapshot).where(Channel.id == channel_id))


async def known_client_ids(session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(Client.id))).all())


# A milestone is a lease row that never expires: the same table, no extra migration.
_MILESTONE_HOLDER = "done"


async def milestone_reached(session: AsyncSession, *, name: str) -> bool:
    """Whether `name` was marked (e.g. the first complete reconciliation pass)."""
    found = await session.scalar(
        select(Lease.name).where(Lease.name == name, Lease.holder == _MILESTONE_HOLDER)
    )
    return found is not None


async def mark_milestone(session: AsyncSession, *, name: str, now: datetime) -> None:
    until = now + timedelta(days=365 * 100)
    await session.execute(
        upsert(session, Lease)
        .values(name=name, holder=_MILESTONE_HOLDER, until=until)
        .on_conflict_do_update(
            index_elements=["name"], set_={"holder": _MILESTONE_HOLDER, "until": until}
        )
    )
