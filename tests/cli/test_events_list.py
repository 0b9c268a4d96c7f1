"""`hub-receiver` as ops run it: a subprocess, configured by the environment only."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from receiver.settings import Settings
from tests.support.app import running_app
from tests.support.cli import hub_receiver
from tests.support.events import SECRET, signed
from tests.support.samples import sample

MakeSettings = Callable[..., Settings]


@pytest.fixture
async def database_with_events(
    make_settings: MakeSettings, sqlite_template: Path, tmp_path: Path
) -> str:
    """A SQLite database holding a channel_live and an event of a type we do not know."""
    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    settings = make_settings(database_url=url, d360_webhook_secret=SECRET)
    async with running_app(settings) as app:
        for body in (sample("partner_webhook.channel_live.json"), b'{"event": "mystery_event"}'):
            response = await app.client.post(
                "/webhooks/partner", content=body, headers=signed(body)
            )
            assert response.status_code == 200
        await app.drain()
    return url


def test_events_list_shows_type_channel_client_verification_and_state(
    database_with_events: str,
) -> None:
    result = hub_receiver("events", "list", database_url=database_with_events)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == [
        "ID",
        "RECEIVED",
        "(UTC)",
        "EVENT",
        "CHANNEL",
        "CLIENT",
        "VERIFIED",
        "STATE",
        "ENRICHMENT",
        "360DIALOG",
        "ID",
        "DEDUP",
        "KEY",
    ]
    newest, oldest = lines[1], lines[2]
    assert "mystery_event (unknown)" in newest
    for cell in ("channel_live", "kJ2mQ8CH", "Vb7xR2CL", "signature"):
        assert cell in oldest
    assert ("processed" in oldest) or ("received" in oldest)


def test_events_list_json_is_for_scripts(database_with_events: str) -> None:
    result = hub_receiver("events", "list", "--json", database_url=database_with_events)
    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout)
    assert [e["event_type"] for e in events] == ["mystery_event", "channel_live"]
    unknown, live = events
    assert unknown["known"] is False
    assert (live["channel_id"], live["client_id"], live["verification"]) == (
        "kJ2mQ8CH",
        "Vb7xR2CL",
        "signature",
    )
    assert live["state"] in {"received", "processed"}
    assert live["source"] == "webhook"


def test_events_list_limit_takes_the_newest(database_with_events: str) -> None:
    one = hub_receiver(
        "events", "list", "--json", "--limit", "1", database_url=database_with_events
    )
    assert one.returncode == 0, one.stderr
    assert [e["event_type"] for e in json.loads(one.stdout)] == ["mystery_event"]


def test_events_list_says_so_when_there_are_no_events(
    sqlite_template: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.db"
    shutil.copy(sqlite_template, empty)
    result = hub_receiver("events", "list", database_url=f"sqlite:///{empty}")
    assert result.returncode == 0, result.stderr
    assert "no events" in result.stdout


def test_migrate_creates_the_schema_in_a_fresh_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    result = hub_receiver("migrate", database_url=f"sqlite:///{path}")
    assert result.returncode == 0, result.stderr
    assert "latest schema" in result.stdout
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"events", "rejected_requests", "deliveries", "alembic_version"} <= tables


@pytest.mark.parametrize("url", ["mysql://root:hunter2@db/hub", "not a url"])
def test_a_bad_database_url_exits_2_naming_database_url(url: str) -> None:
    result = hub_receiver("events", "list", database_url=url)
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
