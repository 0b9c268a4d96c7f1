"""Deliveries held by a rule's mute window: the groups waiting, the claim, the summary link."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.tables import Channel, Delivery, Event, StatusChange
from receiver.vocabulary import DeliveryState


@dataclass(frozen=True, slots=True)
class HeldGroup:
    """Held rows that one catch-up summary tells about: per rule, target and client."""

    rule: str
    target: str
    client_id: str | None  # the built-in `client` target: never mix two clients' news
    group_key: str | None = None  # a muted group_by rule: one summary per group key


@dataclass(frozen=True, slots=True)
class HeldItem:
    """One held delivery, with its event and the channel's status then and now."""

    delivery_id: int
    event_id: int
    event_type: str
    received_at: datetime
    channel_id: str | None
    title: str | None
    target_kind: str
    target_display: str | None
    status_to: str | None  # the status change the event made, if any
    status_now: str | None  # the channel's status as the summary is written
    held_by: str | None


def _held() -> ColumnElement[bool]:
    return and_(Delivery.state == DeliveryState.HELD, Delivery.held_by.is_not(None))


async def held_groups(session: AsyncSession) -> list[HeldGroup]:
    """Every (rule, target, client, group key) with deliveries held by a mute window."""
    rows = await session.execute(
        select(Delivery.rule_name, Delivery.target_name, Delivery.client_id, Delivery.group_key)
        .where(_held())
        .distinct()
    )
    return [HeldGroup(rule=r, target=t, client_id=c, group_key=k) for r, t, c, k in rows.all()]


async def claim_held(session: AsyncSession, *, group: HeldGroup, now: datetime) -> list[int]:
    """Mark the group's held rows summarised; the ids this transaction took.

    The conditional update is the claim: a second worker's update waits on the rows and
    then finds them no longer held, so it takes none and writes no second summary.
    """
    client = (
        Delivery.client_id.is_(None)
        if group.client_id is None
        else Delivery.client_id == group.client_id
    )
    key = (
        Delivery.group_key.is_(None)
        if group.group_key is None
        else Delivery.group_key == group.group_key
    )
    result = await session.execute(
        update(Delivery)
        .where(
            _held(),
            Delivery.rule_name == group.rule,
            Delivery.target_name == group.target,
            client,
            key,
        )
        .values(state=DeliveryState.SUMMARISED, updated_at=now)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.scalars().all())


async def held_items(session: AsyncSession, *, delivery_ids: list[int]) -> list[HeldItem]:
    """The claimed rows with what the summary says about them, oldest event first."""
    rows = await session.execute(
        select(
            Delivery.id,
            Event.id,
            Event.event_type,
            Event.received_at,
            Event.channel_id,
            Delivery.title,
            Delivery.target_kind,
            Delivery.target_display,
            StatusChange.to_status,
            Channel.status,
            Delivery.held_by,
        )
        .join(Event, Event.id == Delivery.event_id)
        .outerjoin(StatusChange, StatusChange.event_id == Event.id)
        .outerjoin(Channel, Channel.id == Event.channel_id)
        .where(Delivery.id.in_(delivery_ids))
        .order_by(Event.received_at, Delivery.id)
    )
    return [HeldItem(*row) for row in rows.all()]


async def link_summary(
    session: AsyncSession, *, delivery_ids: list[int], summary_id: int | None, now: datetime
) -> None:
    await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids))
        .values(summary_id=summary_id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
