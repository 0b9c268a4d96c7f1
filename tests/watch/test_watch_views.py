"""What the watchers found, as `clients list|show` and `channels list|show` print it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from receiver.cli.views import channel_show, channels_list, client_show, clients_list
from receiver.db.store.channels import insert_channel
from receiver.dev.sample_data import ACME_CLIENT_ID, NORDWIND_CLIENT_ID
from receiver.settings import Settings
from receiver.watch.balance import balance_pass
from receiver.watch.health import run_pass
from receiver.watch.keys import set_key
from tests.support.fakes import Hub
from tests.watch.support import open_services
from tests.watch.test_balance import START, balance_services
from tests.watch.test_health import health_settings


async def test_clients_list_and_show_print_balance_usage_and_history(
    database_url: str,
    hub: Hub,
    make_settings: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with balance_services(make_settings, database_url, hub) as (services, clock):
        await balance_pass(services, force=True, sleep=clock.sleep)
        hub.state.set_balance(ACME_CLIENT_ID, balance=5)
        await balance_pass(services, force=True, sleep=clock.sleep)
        settings = services.settings

        assert await clients_list(settings, limit=50, as_json=True) == 0
        items = {item["id"]: item for item in json.loads(capsys.readouterr().out)}
        assert (items[ACME_CLIENT_ID]["balance"], items[ACME_CLIENT_ID]["currency"]) == (
            "5",
            "EUR",
        )
        assert items[ACME_CLIENT_ID]["balance_low"] is True
        assert items[ACME_CLIENT_ID]["total_price"] == "7.25"
        assert items[NORDWIND_CLIENT_ID]["balance"] == "0"

        assert await clients_list(settings, limit=50, as_json=False) == 0
        table = capsys.readouterr().out
        assert "5 EUR  LOW" in table
        assert "BALANCE" in table and "USAGE" in table

        assert await client_show(settings, ACME_CLIENT_ID, as_json=False) == 0
        shown = capsys.readouterr().out
        assert "balance   5 EUR  LOW" in shown
        assert "usage     7.25 this month" in shown
        history = shown.split("balance history (newest first)")[1]
        assert history.index("5 EUR") < history.index("42.5 EUR")  # newest first

        assert await client_show(settings, "nobody", as_json=False) == 1
        assert "no client 'nobody' is known" in capsys.readouterr().err


async def test_channels_list_and_show_print_health_and_when_it_was_checked(
    database_url: str,
    hub: Hub,
    make_settings: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub.state.set_health("kJ2mQ8CH", api_key="the-number-key", status="BLOCKED")
    settings = health_settings(make_settings, database_url, hub)
    async with open_services(settings) as services:
        async with services.sessions.begin() as session:
            for channel_id in ("kJ2mQ8CH", "pT4nR7CH"):
                await insert_channel(
                    session,
                    channel_id=channel_id,
                    values={
                        "status": "live",
                        "snapshot": {},
                        "snapshot_at": START,
                        "fetched_at": START,
                        "enriched": True,
                    },
                )
        await set_key(services, channel_id="kJ2mQ8CH", api_key="the-number-key")
        await run_pass(services, due_only=False)

        assert await channels_list(settings, limit=50, as_json=True) == 0
        items = {item["id"]: item for item in json.loads(capsys.readouterr().out)}
        assert items["kJ2mQ8CH"]["health"] == "blocked"
        assert items["kJ2mQ8CH"]["health_key_set"] is True
        assert items["kJ2mQ8CH"]["health_checked_at"] is not None
        assert (items["pT4nR7CH"]["health"], items["pT4nR7CH"]["health_key_set"]) == (None, False)

        assert await channels_list(settings, limit=50, as_json=False) == 0
        listed = capsys.readouterr().out
        assert "blocked (checked " in listed and "no key" in listed
        assert await channel_show(settings, "kJ2mQ8CH", as_json=False) == 0
        shown = capsys.readouterr().out
        assert "health    blocked (checked " in shown
        assert "the-number-key" not in listed + shown
