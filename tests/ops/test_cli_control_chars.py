"""What a client's name (from 360dialog or a forged webhook) can do to an operator's terminal."""

from __future__ import annotations

import pytest

from tests.ops.cli_support import channel, client, event, store
from tests.support.cli import hub_receiver

# Clear the screen, home the cursor, set the window title, a C1 CSI and a bidi override
# (PostgreSQL stores no NUL, and snapshots drop it: see ingest).
HOSTILE_NAME = "Acme\x1b[2J\x1b[H\x1b]0;owned\x07 GmbH\x9b31m\u202eevil\r\n"


@pytest.fixture
async def hostile_client_db(database_url: str) -> str:
    await store(
        database_url,
        client("cl-1", name=HOSTILE_NAME),
        channel("ch-1", client_id="cl-1"),
        event(1, channel_id="ch-1"),
    )
    return database_url


@pytest.mark.parametrize("command", [("channels", "list"), ("channels", "show", "ch-1")])
def test_channel_tables_print_a_client_name_without_control_characters(
    hostile_client_db: str, command: tuple[str, ...]
) -> None:
    result = hub_receiver(*command, DATABASE_URL=hostile_client_db)

    assert result.returncode == 0, result.stderr
    assert "Acme[2J[H]0;owned GmbH31mevil" in result.stdout
    for control in ("\x1b", "\x07", "\x9b", "\u202e", "\r"):
        assert control not in result.stdout


def test_the_json_listing_keeps_the_name_exactly_escaped(hostile_client_db: str) -> None:
    result = hub_receiver("channels", "list", "--json", DATABASE_URL=hostile_client_db)

    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "\\u001b[2J" in result.stdout
