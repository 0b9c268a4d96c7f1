"""Client balance: reading 360dialog's answer, crossings as events, the shared 10 s limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from receiver.db.store.channels import insert_client
from receiver.db.tables import BalanceHistory, BalanceRound, ClientBalance, Event
from receiver.dev.sample_data import ACME_CLIENT_ID, NORDWIND_CLIENT_ID
from receiver.partner.client import PartnerClient
from receiver.services import Services
from receiver.settings import Settings
from receiver.watch.balance import (
    BalanceWatcher,
    Scope,
    UnreadableBalanceError,
    balance_pass,
    crossing,
    direct_payment,
    parse_balance,
    parse_scope,
)
from tests.support.fakes import API_KEY, PARTNER_ID, Hub
from tests.watch.support import open_services

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
D = Decimal

# -- pure: reading the answer ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "balance", "currency", "total_price"),
    [
        (
            {"balance": 42.5, "currency": "EUR", "usage": {"total_price": 7.25}},
            "42.5",
            "EUR",
            "7.25",
        ),
        ({"balance": "12.30", "currency": "USD"}, "12.30", "USD", None),
        ({"balance": 0}, "0", None, None),
        ({"balance": -3.5, "usage": {"currency": "EUR", "total_price": "1"}}, "-3.5", "EUR", "1"),
        ({"data": {"balance": 5, "currency": "EUR"}}, "5", "EUR", None),  # wrapped
        (  # usage per month (from_month/from_year): this month's, not the first
            {
                "balance": 9,
                "usage": [
                    {"year": 2026, "month": 11, "total_price": 30},
                    {"year": 2026, "month": 12, "total_price": 4.5},
                ],
            },
            "9",
            None,
            "4.5",
        ),
        ({"balance": 9, "usage": {"total_price": "n/a"}}, "9", None, None),  # usage optional
    ],
)
def test_the_balance_answer_is_read_tolerantly(
    body: object, balance: str, currency: str | None, total_price: str | None
) -> None:
    reading = parse_balance(body, year=2026, month=12)
    assert reading.balance == D(balance)
    assert reading.currency == currency
    assert reading.total_price == (None if total_price is None else D(total_price))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"balance": "n/a"}, "`balance` is not a number: 'n/a'"),
        ({"balance": None}, "`balance` is not a number: None"),
        ({"balance": True}, "`balance` is not a number: True"),
        ({"balance": "NaN"}, "`balance` is not a number: 'NaN'"),
        ({"balance": {"amount": 5}}, "`balance` is not a number: {'amount': 5}"),
        ({"currency": "EUR"}, "no `balance` field in the answer"),
        ([1, 2], "expected a JSON object, got list"),
        ("oops", "expected a JSON object, got str"),
    ],
)
def test_a_balance_that_is_not_a_number_is_an_error_never_a_zero(body: object, reason: str) -> None:
    with pytest.raises(UnreadableBalanceError) as caught:
        parse_balance(body, year=2026, month=12)
    assert str(caught.value) == reason


# -- pure: crossings and who is direct-payment -------------------------------------------


@pytest.mark.parametrize(
    ("was_low", "balance", "watched", "expected"),
    [
        (False, "42", True, (False, None)),  # fine, stays fine
        (False, "9.99", True, (True, "balance_low")),  # crosses below
        (True, "5", True, (True, None)),  # still low: nothing new
        (True, "9.99", True, (True, None)),
        (True, "10", True, (False, "balance_recovered")),  # back to the threshold
        (True, "250", True, (False, "balance_recovered")),
        (False, "10", True, (False, None)),  # exactly the threshold is not low
        (False, "-4", True, (True, "balance_low")),  # overdrawn
        (False, "0", False, (False, None)),  # not direct payment: never an alert
    ],
)
def test_only_a_crossing_of_the_threshold_records_something(
    was_low: bool, balance: str, watched: bool, expected: tuple[bool, str | None]
) -> None:
    got = crossing(was_low=was_low, balance=D(balance), threshold=D(10), watched=watched)
    assert got == expected


@pytest.mark.parametrize(
    ("scope", "nonzero_seen", "balance", "expected"),
    [
        ("auto", False, "0", False),  # the seed: 0 for everyone without direct payment
        ("auto", False, "0.01", True),
        ("auto", True, "0", True),  # spent to exactly 0: still direct payment
        ("all", False, "0", True),
        ("Vb7xR2CL", False, "0", True),
    ],
)
def test_direct_payment_is_a_balance_that_was_ever_non_zero_unless_overridden(
    scope: str, nonzero_seen: bool, balance: str, expected: bool
) -> None:
    assert direct_payment(parse_scope(scope), nonzero_seen=nonzero_seen, balance=D(balance)) is (
        expected
    )


def test_balance_clients_reads_auto_all_or_ids() -> None:
    assert parse_scope("auto") == Scope("auto")
    assert parse_scope("ALL") == Scope("all")
    assert parse_scope("Vb7xR2CL,Hn3pZ8CL") == Scope("ids", ("Vb7xR2CL", "Hn3pZ8CL"))


# -- against the fake hub, on SQLite and PostgreSQL ----------------------------------------


class Clock:
    """A clock the limiter's sleep moves on, so 10 s slots cost no real time."""

    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@asynccontextmanager
async def balance_services(
    make_settings: Callable[..., Settings], url: str, hub: Hub, **values: object
) -> AsyncIterator[tuple[Services, Clock]]:
    settings = make_settings(
        database_url=url,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
        **values,
    )
    clock = Clock()
    async with open_services(settings) as services:
        services.clock = clock
        services.partner = PartnerClient(
            base_url=hub.url, partner_id=PARTNER_ID, api_key=API_KEY, max_retries=0
        )
        async with services.sessions() as session, session.begin():
            for client_id in hub.state.clients:
                await insert_client(
                    session,
                    client_id=client_id,
                    values={"snapshot": {}, "fetched_at": START, "source": "partner_api"},
                )
        yield services, clock


async def balance_events(services: Services) -> list[tuple[str, str | None, dict[str, object]]]:
    async with services.sessions() as session:
        rows = await session.execute(
            select(Event.event_type, Event.client_id, Event.raw_body)
            .where(Event.source == "balance")
            .order_by(Event.id)
        )
        return [(t, c, json.loads(body or "{}")) for t, c, body in rows.all()]


async def row(services: Services, client_id: str) -> ClientBalance:
    async with services.sessions() as session:
        found = await session.get(ClientBalance, client_id)
        assert found is not None
        return found


def balance_requests(hub: Hub) -> list[str]:
    return [
        r.path.split("/")[4]
        for r in hub.state.requests
        if r.path.endswith("/info/balance") and r.method == "GET"
    ]


async def test_a_low_balance_is_told_once_and_its_recovery_once(
    database_url: str, hub: Hub, make_settings: Callable[..., Settings]
) -> None:
    async with balance_services(make_settings, database_url, hub) as (services, clock):
        first = await balance_pass(services, force=True, sleep=clock.sleep)
        assert (first.read, first.events) == (2, 0)  # Acme 42.50 EUR, Nordwind 0
        for balance, expected in [
            (5, ["balance_low"]),
            (3.2, []),  # still low: nothing new
            (9.99, []),
            (25, ["balance_recovered"]),
            (30, []),
            (1, ["balance_low"]),  # a second crossing is a new event
        ]:
            hub.state.set_balance(ACME_CLIENT_ID, balance=balance)
            before = len(await balance_events(services))
            await balance_pass(services, force=True, sleep=clock.sleep)
            events = await balance_events(services)
            assert [t for t, _, _ in events[before:]] == expected, balance

        events = await balance_events(services)
        assert {client for _, client, _ in events} == {ACME_CLIENT_ID}  # Nordwind: balance 0
        _, _, body = events[0]
        assert body["event"] == "balance_low"
        assert (body["balance"], body["currency"], body["threshold"]) == (5.0, "EUR", 10.0)
        assert body["total_price"] == 7.25
        assert body["previous_balance"] == 42.5
        acme = await row(services, ACME_CLIENT_ID)
        assert (acme.balance, acme.low, acme.crossings) == ("1", True, 3)
        nordwind = await row(services, NORDWIND_CLIENT_ID)
        assert (nordwind.balance, nordwind.nonzero_seen, nordwind.low) == ("0", False, False)
        async with services.sessions() as session:
            history = (
                await session.scalars(
                    select(BalanceHistory.balance)
                    .where(BalanceHistory.client_id == ACME_CLIENT_ID)
                    .order_by(BalanceHistory.id)
                )
            ).all()
        assert history == ["42.5", "5", "3.2", "9.99", "25", "30", "1"]


async def test_a_crossing_recorded_before_a_crash_is_not_recorded_again(
    database_url: str, hub: Hub, make_settings: Callable[..., Settings]
) -> None:
    async with balance_services(
        make_settings, database_url, hub, balance_clients=ACME_CLIENT_ID
    ) as (services, clock):
        await balance_pass(services, force=True, sleep=clock.sleep)
        hub.state.set_balance(ACME_CLIENT_ID, balance=2)
        await balance_pass(services, force=True, sleep=clock.sleep)
        # The crash: the event is stored, the client's state is put back as it was before.
        async with services.sessions() as session, session.begin():
            acme = await session.get(ClientBalance, ACME_CLIENT_ID)
            assert acme is not None
            acme.low, acme.crossings, acme.balance = False, 0, "42.5"
        await balance_pass(services, force=True, sleep=clock.sleep)
        assert [t for t, _, _ in await balance_events(services)] == ["balance_low"]
        assert (await row(services, ACME_CLIENT_ID)).low is True


async def test_a_balance_that_is_not_a_number_is_logged_and_asked_again_never_alerted(
    database_url: str,
    hub: Hub,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with balance_services(
        make_settings, database_url, hub, balance_clients=ACME_CLIENT_ID
    ) as (services, clock):
        await balance_pass(services, force=True, sleep=clock.sleep)
        hub.state.set_balance(ACME_CLIENT_ID, balance="n/a")
        result = await balance_pass(services, force=True, sleep=clock.sleep)
        assert (result.read, result.errors, result.events) == (0, 1, 0)
        assert "balance of client Vb7xR2CL not read (`balance` is not a number: 'n/a')" in (
            caplog.text
        )
        acme = await row(services, ACME_CLIENT_ID)
        assert (acme.balance, acme.low) == ("42.5", False)  # the last good reading stays
        assert acme.last_error == "`balance` is not a number: 'n/a'"
        hub.state.set_balance(ACME_CLIENT_ID, balance=4)
        await balance_pass(services, force=True, sleep=clock.sleep)
        assert [t for t, _, _ in await balance_events(services)] == ["balance_low"]
        assert (await row(services, ACME_CLIENT_ID)).last_error is None


async def test_the_watcher_polls_least_recently_polled_first_and_each_client_once_a_round(
    database_url: str, hub: Hub, make_settings: Callable[..., Settings]
) -> None:
    hub.state.set_balance(NORDWIND_CLIENT_ID, balance=3, currency="EUR")  # both direct payment
    async with balance_services(make_settings, database_url, hub) as (services, clock):
        watcher = BalanceWatcher()
        assert watcher.interval(services.settings) == 3600
        await balance_pass(services, force=True, sleep=clock.sleep)
        assert balance_requests(hub) == [NORDWIND_CLIENT_ID, ACME_CLIENT_ID]  # never: by id
        hub.state.requests.clear()
        # `balance check` for Acme alone (BALANCE_CLIENTS=id) makes Nordwind the older one.
        only_acme = services.settings.with_overrides(balance_clients=ACME_CLIENT_ID)
        services.settings = only_acme
        await balance_pass(services, force=True, sleep=clock.sleep)
        services.settings = only_acme.with_overrides(balance_clients="auto")
        hub.state.requests.clear()
        clock.advance(3600)
        await balance_pass(services, sleep=clock.sleep)
        assert balance_requests(hub) == [NORDWIND_CLIENT_ID, ACME_CLIENT_ID]
        hub.state.requests.clear()
        clock.advance(60)
        result = await balance_pass(services, sleep=clock.sleep)  # nobody is due yet
        assert (result.clients, balance_requests(hub)) == (0, [])
        # Every request waited for its own slot (10 s and a margin) of the shared limit.
        assert all(s <= 10.5 for s in clock.slept)
        async with services.sessions() as session:
            rounds = await session.scalar(select(func.count()).select_from(BalanceRound))
        assert rounds == 4


async def test_a_client_whose_balance_stays_zero_is_asked_once_a_day(
    database_url: str, hub: Hub, make_settings: Callable[..., Settings]
) -> None:
    async with balance_services(make_settings, database_url, hub) as (services, clock):
        await balance_pass(services, sleep=clock.sleep)
        hub.state.requests.clear()
        for _ in range(5):
            clock.advance(3600)
            await balance_pass(services, sleep=clock.sleep)
        assert balance_requests(hub) == [ACME_CLIENT_ID] * 5
        clock.advance(86400)
        hub.state.requests.clear()
        await balance_pass(services, sleep=clock.sleep)
        assert sorted(balance_requests(hub)) == sorted([ACME_CLIENT_ID, NORDWIND_CLIENT_ID])


async def test_a_rate_limited_answer_pushes_the_shared_limit_back(
    database_url: str, hub: Hub, make_settings: Callable[..., Settings]
) -> None:
    async with balance_services(
        make_settings, database_url, hub, balance_clients=ACME_CLIENT_ID
    ) as (services, clock):
        hub.state.fail_next(1, status=429, retry_after=40)
        result = await balance_pass(services, force=True, sleep=clock.sleep)
        assert result.errors == 1
        await balance_pass(services, force=True, sleep=clock.sleep)
        assert clock.slept[-1] >= 39  # the next slot starts after Retry-After, not 10 s


async def test_metrics_say_how_long_the_last_round_took(
    database_url: str, hub: Hub, make_settings: Callable[..., Settings]
) -> None:
    from receiver.ops.gauges import refresh_gauges

    async with balance_services(make_settings, database_url, hub) as (services, clock):
        await refresh_gauges(services)
        assert str(services.metrics.balance_round_seconds._value.get()) == "nan"
        await balance_pass(services, force=True, sleep=clock.sleep)
        await refresh_gauges(services)
        # Two clients, one slot (10 s and a margin) each after the first.
        assert services.metrics.balance_round_seconds._value.get() >= 10
        assert services.metrics.balance_round_clients._value.get() == 2
