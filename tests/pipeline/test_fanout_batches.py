"""Delivery claims and outcome records in batches: each row is still claimed once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from receiver.db.tables import Delivery
from receiver.pipeline import deliver, group_commit
from receiver.services import Services, base_services
from receiver.settings import Settings
from receiver.vocabulary import DeliveryState
from tests.pipeline.support import attempts_of, stored_webhook

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def store_deliveries(services: Services, count: int) -> list[int]:
    async with services.sessions.begin() as session:
        event = stored_webhook(
            "fanout-test", state="processed", received_at=NOW, correlation_id="fa00fa00fa00fa00"
        )
        session.add(event)
        await session.flush()
        rows = [
            Delivery(
                event_id=event.id,
                rule_name=f"rule {n}",
                target_name="sink",
                target_kind="json",
                state=DeliveryState.PENDING,
                created_at=NOW,
                updated_at=NOW,
            )
            for n in range(count)
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def test_two_workers_claiming_in_batches_claim_each_row_once(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(database_url=database_url)
    first, second = base_services(settings), base_services(settings)
    try:
        ids = await store_deliveries(first, 60)
        # Both workers ask for every row, in overlapping batches, at the same time.
        claims = await asyncio.gather(
            *(deliver.claim_deliveries(first, ids[i : i + 20]) for i in range(0, 60, 20)),
            *(deliver.claim_deliveries(second, ids[i : i + 30]) for i in range(0, 60, 30)),
            deliver.claim_deliveries(second, ids[::-1]),
        )
        won = Counter(found[0].id for batch in claims for found in batch if found is not None)
        assert sorted(won) == ids
        assert set(won.values()) == {1}
    finally:
        await first.engine.dispose()
        await second.engine.dispose()


async def test_a_row_asked_for_twice_in_one_batch_goes_to_the_first_job_only(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    services = base_services(make_settings(database_url=database_url))
    try:
        [one, two] = await store_deliveries(services, 2)
        claimed = await deliver.claim_deliveries(services, [one, two, one])
        assert [c[0].id if c else None for c in claimed] == [one, two, None]
        events = [c[1] for c in claimed if c]
        assert all(e is not None and e.correlation_id == "fa00fa00fa00fa00" for e in events)
    finally:
        await services.engine.dispose()


async def test_concurrent_jobs_share_one_claim_and_one_record_transaction(
    make_settings: Callable[..., Settings], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = base_services(make_settings(database_url=database_url))
    claim_batches: list[int] = []
    record_batches: list[int] = []
    claim, record = deliver.claim_deliveries, deliver.record_outcomes

    async def counting_claim(s: Services, ids: list[int]) -> list[object]:
        claim_batches.append(len(ids))
        return await claim(s, ids)  # type: ignore[return-value]

    async def counting_record(s: Services, units: list[object]) -> list[list[int]]:
        record_batches.append(len(units))
        return await record(s, units)  # type: ignore[arg-type]

    monkeypatch.setattr(deliver, "claim_deliveries", counting_claim)
    monkeypatch.setattr(deliver, "record_outcomes", counting_record)
    try:
        ids = await store_deliveries(services, 10)

        async def job(delivery_id: int) -> None:
            found = await deliver.claim_delivery(services, delivery_id)
            assert found is not None
            row, event = found
            assert event is not None
            outcome = deliver.Outcome(state=DeliveryState.SENT, error=None)
            assert await deliver._batches(services).records.submit((row, event, outcome)) == []

        await asyncio.gather(*(job(i) for i in ids))
        assert claim_batches == [10]
        assert record_batches == [10]
        async with services.sessions() as session:
            for delivery_id in ids:
                row = await session.get(Delivery, delivery_id)
                assert row is not None
                assert (row.state, row.attempts, row.claimed_at) == (DeliveryState.SENT, 1, None)
                assert row.sent_at is not None
        assert [a.outcome for a in await attempts_of(services.sessions, ids[0])] == ["sent"]
    finally:
        await services.engine.dispose()


@pytest.mark.parametrize(
    ("outcomes", "counted"),
    [
        ([("a", "sent"), ("a", "sent"), ("a", "sent")], [True, False, False]),
        ([("a", "sent"), ("b", "sent"), ("a", "sent")], [True, True, False]),
        ([("a", "sent"), ("a", "failed"), ("a", "sent")], [True, True, True]),
        ([("a", "dead"), ("a", "dead")], [True, True]),
        ([("a", "sent"), ("a", "skipped"), ("a", "sent")], [True, False, False]),
        ([("a", "skipped"), ("a", "sent")], [False, True]),
    ],
)
def test_only_the_first_of_a_run_of_successes_is_counted_against_health(
    outcomes: list[tuple[str, str]], counted: list[bool]
) -> None:
    assert deliver.health_counted(outcomes) == counted


async def test_a_batch_one_row_of_which_is_refused_is_written_row_by_row() -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        if 3 in items:
            raise IntegrityError("insert", {}, Exception("refused"))
        return [i * 10 for i in items]

    batches = group_commit.GroupCommit(flush, max_batch=10, split_on=(IntegrityError,))
    results = await asyncio.gather(
        *(batches.submit(i) for i in (1, 2, 3, 4)), return_exceptions=True
    )
    assert results[:2] == [10, 20] and results[3] == 40
    assert isinstance(results[2], IntegrityError)
    assert flushed[0] == [1, 2, 3, 4]
    assert sorted(map(tuple, flushed[1:])) == [(1,), (2,), (3,), (4,)]


async def test_a_batch_the_database_fails_fails_every_job_of_it() -> None:
    calls = 0

    async def flush(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        raise OSError("database down")

    batches = group_commit.GroupCommit(flush, max_batch=10, split_on=(IntegrityError,))
    results = await asyncio.gather(*(batches.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert calls == 1


async def test_an_attempt_records_when_its_send_ended_not_when_its_batch_was_written(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    # The retry schedule counts from the end of a try; an attempt written later by its batch
    # must still say when the try ended, or the gap to the next try reads too short.
    services = base_services(make_settings(database_url=database_url))
    try:
        [delivery_id] = await store_deliveries(services, 1)
        found = await deliver.claim_delivery(services, delivery_id)
        assert found is not None
        row, event = found
        assert event is not None
        ended = datetime.now(UTC) - timedelta(seconds=5)
        outcome = deliver.Outcome(state=DeliveryState.SENT, error=None, finished_at=ended)
        await deliver._batches(services).records.submit((row, event, outcome))
        [attempt] = await attempts_of(services.sessions, delivery_id)
        assert attempt.finished_at is not None
        assert attempt.finished_at.replace(tzinfo=UTC) == ended
    finally:
        await services.engine.dispose()


@pytest.mark.parametrize(("linger", "batches"), [(0.0, [[0], [1, 2]]), (0.05, [[0, 1, 2]])])
async def test_a_lingering_group_commit_gathers_the_items_that_follow(
    linger: float, batches: list[list[int]]
) -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        await asyncio.sleep(0.01)  # the round trip, during which more items arrive
        return items

    group = group_commit.GroupCommit(flush, max_batch=10, linger=lambda: linger)

    async def later(item: int) -> int:
        await asyncio.sleep(0.005)
        return await group.submit(item)

    assert list(await asyncio.gather(group.submit(0), later(1), later(2))) == [0, 1, 2]
    assert flushed == batches


async def test_a_lingering_group_commit_cancelled_cancels_its_waiting_jobs() -> None:
    async def flush(items: list[int]) -> list[int]:
        return items

    group = group_commit.GroupCommit(flush, max_batch=10, linger=lambda: 10.0)
    waiting = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0.01)  # the runner is lingering
    runner = group._runner
    assert runner is not None and not runner.done()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
