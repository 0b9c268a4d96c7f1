"""Client balances: who to poll next, the claim before each request, readings and rounds.

`claim` is a conditional upsert: a client is requested by one pass at a time, and not again
before its cutoff, so two processes polling together split the clients instead of asking
twice. `save_reading` is guarded by the crossings count it read (compare-and-set), so of
two concurrent readings of one crossing only one moves the state on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import desc, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.dialect import upsert
from receiver.db.tables import BalanceHistory, BalanceRound, Client, ClientBalance

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A client that may be polled, with when it was last requested."""

    client_id: str
    requested_at: datetime | None
    nonzero_seen: bool


@dataclass(frozen=True, slots=True)
class BalanceState:
    """A client's balance row as a pass reads it after claiming."""

    client_id: str
    balance: str | None
    currency: str | None
    total_price: str | None
    polled_at: datetime | None
    requested_at: datetime | None
    nonzero_seen: bool
    low: bool
    crossings: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Round:
    started_at: datetime
    finished_at: datetime | None
    clients: int
    errors: int


_COLUMNS = (
    ClientBalance.client_id,
    ClientBalance.balance,
    ClientBalance.currency,
    ClientBalance.total_price,
    ClientBalance.polled_at,
    ClientBalance.requested_at,
    ClientBalance.nonzero_seen,
    ClientBalance.low,
    ClientBalance.crossings,
    ClientBalance.last_error,
)


def _state(row: ClientBalance) -> BalanceState:
    return BalanceState(
        client_id=row.client_id,
        balance=row.balance,
        currency=row.currency,
        total_price=row.total_price,
        polled_at=row.polled_at,
        requested_at=row.requested_at,
        nonzero_seen=row.nonzero_seen,
        low=row.low,
        crossings=row.crossings,
        last_error=row.last_error,
    )


async def candidates(session: AsyncSession, *, ids: Sequence[str] | None) -> list[Candidate]:
    """Known clients (or exactly `ids`), least recently requested first."""
    if ids is None:
        statement = select(
            Client.id, ClientBalance.requested_at, ClientBalance.nonzero_seen
        ).outerjoin(ClientBalance, ClientBalance.client_id == Client.id)
        rows = [(r[0], r[1], bool(r[2])) for r in (await session.execute(statement)).all()]
    else:
        found = await session.execute(
            select(
                ClientBalance.client_id, ClientBalance.requested_at, ClientBalance.nonzero_seen
            ).where(ClientBalance.client_id.in_(list(ids)))
        )
        known = {r[0]: (r[1], bool(r[2])) for r in found.all()}
        rows = [(i, *known.get(i, (None, False))) for i in ids]
    out = [Candidate(client_id=c, requested_at=at, nonzero_seen=nz) for c, at, nz in rows]
    # Never requested first, then oldest request first: round-robin across passes.
    out.sort(key=lambda c: (c.requested_at is not None, c.requested_at or _EPOCH, c.client_id))
    return out


async def claim(
    session: AsyncSession, *, client_id: str, now: datetime, cutoff: datetime | None
) -> BalanceState | None:
    """Mark `client_id` requested now unless it was requested after `cutoff`; None if it was."""
    statement = (
        upsert(session, ClientBalance)
        .values(client_id=client_id, requested_at=now, nonzero_seen=False, low=False, crossings=0)
        .on_conflict_do_update(
            index_elements=["client_id"],
            set_={"requested_at": now},
            where=None
            if cutoff is None
            else or_(ClientBalance.requested_at.is_(None), ClientBalance.requested_at <= cutoff),
        )
        .returning(*_COLUMNS)
    )
    row = (await session.execute(statement)).first()
    return None if row is None else BalanceState(**row._asdict())


async def save_reading(
    session: AsyncSession,
    *,
    client_id: str,
    now: datetime,
    balance: str,
    currency: str | None,
    total_price: str | None,
    nonzero_seen: bool,
    low: bool,
    expected_crossings: int,
    crossings: int,
    changed: bool,
) -> bool:
    """Store a reading (and a history row when it changed); False if another pass won."""
    result = await session.execute(
        update(ClientBalance)
        .where(
            ClientBalance.client_id == client_id,
            ClientBalance.crossings == expected_crossings,
        )
        .values(
            balance=balance,
            currency=currency,
            total_price=total_price,
            polled_at=now,
            nonzero_seen=nonzero_seen,
            low=low,
            crossings=crossings,
            last_error=None,
        )
        .returning(ClientBalance.client_id)
    )
    if result.first() is None:
        return False
    if changed:
        await session.execute(
            insert(BalanceHistory).values(
                client_id=client_id,
                polled_at=now,
                balance=balance,
                currency=currency,
                total_price=total_price,
            )
        )
    return True


async def save_error(session: AsyncSession, *, client_id: str, error: str) -> None:
    await session.execute(
        update(ClientBalance)
        .where(ClientBalance.client_id == client_id)
        .values(last_error=error[:1000])
    )


async def start_round(session: AsyncSession, *, now: datetime) -> int:
    found = await session.execute(
        insert(BalanceRound)
        .values(started_at=now, finished_at=None, clients=0, errors=0)
        .returning(BalanceRound.id)
    )
    return int(found.scalar_one())


async def finish_round(
    session: AsyncSession, *, round_id: int, now: datetime, clients: int, errors: int
) -> None:
    await session.execute(
        update(BalanceRound)
        .where(BalanceRound.id == round_id)
        .values(finished_at=now, clients=clients, errors=errors)
    )


async def last_round(session: AsyncSession) -> Round | None:
    """The most recently finished pass."""
    row = (
        await session.execute(
            select(BalanceRound)
            .where(BalanceRound.finished_at.is_not(None))
            .order_by(desc(BalanceRound.finished_at))
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    return Round(row.started_at, row.finished_at, row.clients, row.errors)


async def balances(session: AsyncSession, *, client_ids: Sequence[str]) -> dict[str, BalanceState]:
    """The balance rows of these clients (those never polled are absent)."""
    if not client_ids:
        return {}
    rows = await session.execute(
        select(ClientBalance).where(ClientBalance.client_id.in_(list(client_ids)))
    )
    return {row.client_id: _state(row) for row in rows.scalars()}


async def history(
    session: AsyncSession, *, client_id: str, limit: int = 10
) -> list[tuple[datetime, str, str | None, str | None]]:
    """The latest balance changes of a client, newest first: (at, balance, currency, usage)."""
    rows = await session.execute(
        select(
            BalanceHistory.polled_at,
            BalanceHistory.balance,
            BalanceHistory.currency,
            BalanceHistory.total_price,
        )
        .where(BalanceHistory.client_id == client_id)
        .order_by(desc(BalanceHistory.polled_at), desc(BalanceHistory.id))
        .limit(limit)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows.all()]
