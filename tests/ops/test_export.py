"""`hub-receiver export numbers`: one CSV row per number, for Excel and LibreOffice or a script.

The command runs as ops run it (its own process, configured by the environment) against a
database that learned its numbers the real way: reconciliation against the fake Partner API,
processed by the pipeline, with a health check and a balance poll on top.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from receiver.dev.sample_data import (
    ACME_CLIENT_ID,
    ACME_LIVE_CHANNEL_ID,
    build_channel,
    build_client,
)
from receiver.jobs.process import process_event
from receiver.ops.export import COLUMNS, guard_cell, number_csv, number_row, unguard_cell
from receiver.settings import Settings
from receiver.watch.balance import balance_pass
from receiver.watch.health import run_pass
from receiver.watch.keys import set_key
from receiver.watch.reconcile import reconcile
from receiver.wiring import open_runtime
from tests.support.app import running_app
from tests.support.fakes import API_KEY, PARTNER_ID, Hub
from tests.support.processes import REPO, process_env

MakeSettings = Callable[..., Settings]

BOM = "\ufeff"
HEADERS = [
    "Company legal name",
    "WhatsApp number",
    "Contact email",
    "Message on behalf",
    "Meta business verification",
    "Number registration",
    "Hosting platform type",
    "Status",
    "Status reason",
    "Health",
    "Balance",
    "Client ID",
    "Channel ID",
]

# A client names itself, and its number's settings come from outside: values a spreadsheet
# would run as formulas, each starting with one of = + - @ tab CR.
HYPERLINK = '=HYPERLINK("http://evil.example/?q=1","Click me")'
EVIL_CLIENT = "Ev1lX9CL"
EVIL_CHANNEL = "Ev1lX9CH"
EVIL_PHONE = "+4915123456789"
EVIL_EMAIL = "-ops@evil.example"
# Quoting: a comma, quotes and a line break in one name, and text that is not ASCII.
QUOTED_NAME = 'Müller, "Die Bäcker"\nGmbH'
QUOTED_CLIENT = "Qu0tE5CL"
QUOTED_CHANNEL = "Qu0tE5CH"
ALREADY_QUOTED = "'=1+1"  # a leading ' that a script's unguarding must not eat

NUMBER_KEY = "the-numbers-own-api-key"
KEYS_SECRET = "m4wL9dOqYj0rQF0xN6cXb6oQyGm1r2sP3t4u5v6w7x8="


@dataclass(frozen=True)
class Estate:
    """A database holding the fake hub's numbers, and the settings that reach the hub."""

    url: str
    hub: Hub
    settings: Settings

    def partner_variables(self) -> dict[str, object]:
        return {
            "DATABASE_URL": self.url,
            "D360_PARTNER_ID": PARTNER_ID,
            "D360_API_KEY": API_KEY,
            "D360_API_BASE": self.hub.url,
            "PARTNER_API_RATE": "1000/s",
        }


def add_hostile_numbers(hub: Hub) -> None:
    evil = build_client(
        client_id=EVIL_CLIENT, name=HYPERLINK, organisation=HYPERLINK, email=EVIL_EMAIL
    )
    quoted = build_client(
        client_id=QUOTED_CLIENT,
        name=QUOTED_NAME,
        organisation=QUOTED_NAME,
        email="büro@müller.example",
    )
    hub.state.set_client(evil)
    hub.state.set_client(quoted)
    hub.state.set_channel(
        {
            **build_channel(
                channel_id=EVIL_CHANNEL,
                client=evil,
                phone_number=EVIL_PHONE,
                phone_name="Evil",
                hub_status="live",
                app_id="666",
                fb_account_status="\rverified",
            ),
            "hosting_platform_type": "\tcloud_api",
        }
    )
    hub.state.update_channel(
        EVIL_CHANNEL, waba_account={"on_behalf_of_business_info": {"status": "@approved"}}
    )
    hub.state.set_channel(
        {
            **build_channel(
                channel_id=QUOTED_CHANNEL,
                client=quoted,
                phone_number="+4930123456",
                phone_name="Müller",
                hub_status="live",
                app_id="777",
            ),
            "hosting_platform_type": ALREADY_QUOTED,
        }
    )
    hub.state.set_balance(EVIL_CLIENT, balance="-3.20", currency="EUR")
    hub.state.set_health(EVIL_CHANNEL, api_key=NUMBER_KEY, status="BLOCKED")


async def learn_estate(url: str, make_settings: MakeSettings, hub: Hub) -> Estate:
    """Reconcile against the fake hub and process what it found; check one health, one balance."""
    add_hostile_numbers(hub)
    settings = make_settings(
        database_url=url,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
        d360_waba_base=hub.url,
        d360_waba_v2_base=hub.url,
        keys_secret=KEYS_SECRET,
        balance_clients=EVIL_CLIENT,  # one poll: the balance limit is one request per 10 s
    )
    async with open_runtime(settings, role="cli") as services:
        found = await reconcile(services)
        for event_id in found.recorded:
            await process_event({"services": services}, event_id)
        await set_key(services, channel_id=EVIL_CHANNEL, api_key=NUMBER_KEY)
        await run_pass(services, due_only=False, channel_ids=[EVIL_CHANNEL])
        await balance_pass(services, force=True)
    return Estate(url=url, hub=hub, settings=settings)


@pytest.fixture
async def estate(database_url: str, make_settings: MakeSettings, hub: Hub) -> Estate:
    return await learn_estate(database_url, make_settings, hub)


@pytest.fixture
async def sqlite_estate(sqlite_url: str, make_settings: MakeSettings, hub: Hub) -> Estate:
    return await learn_estate(sqlite_url, make_settings, hub)


async def export(*args: str, **variables: object) -> subprocess.CompletedProcess[bytes]:
    """`hub-receiver export numbers ARGS` in its own process; its output as bytes, untranslated."""
    env = process_env({name.upper(): str(value) for name, value in variables.items()})
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "receiver", "export", "numbers", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=90,
        check=False,
    )


def records_of(data: bytes, *, bom: bool) -> list[list[str]]:
    """The CSV's records, read by Python's csv module as RFC 4180 says (no newline translation)."""
    text = data.decode("utf-8")
    assert text.startswith(BOM) is bom
    return list(csv.reader(io.StringIO(text.removeprefix(BOM), newline="")))


def by_channel(rows: list[list[str]]) -> dict[str, list[str]]:
    channel_ids = [row[-1] for row in rows]
    assert len(set(channel_ids)) == len(channel_ids), channel_ids
    return dict(zip(channel_ids, rows, strict=True))


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def error_lines(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    """What stderr says to a person (the JSON log lines left out)."""
    lines = result.stderr.decode().splitlines()
    return [line for line in lines if not line.startswith("{")]


# --- the spreadsheet form ---------------------------------------------------------------------


async def test_the_export_has_a_bom_the_headers_in_order_and_a_row_per_number(
    estate: Estate,
) -> None:
    result = await export(DATABASE_URL=estate.url)

    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(BOM.encode("utf-8"))
    header, *rows = records_of(result.stdout, bom=True)
    assert header == HEADERS
    assert list(COLUMNS) == HEADERS
    numbers = by_channel(rows)
    assert set(numbers) == set(estate.hub.state.channels)
    assert numbers[ACME_LIVE_CHANNEL_ID] == [
        "Acme Bakery GmbH",  # the organisation from the clients list, kept by later webhooks
        "'+4915112345678",
        "ops@acme-bakery.example",
        "approved",
        "verified",
        "registered",
        "",
        "live",
        "hub_status is 'live'",
        "",
        "",  # Acme's balance was never polled here (only the evil client's was)
        ACME_CLIENT_ID,
        ACME_LIVE_CHANNEL_ID,
    ]


async def test_cells_a_spreadsheet_would_run_as_formulas_are_guarded_with_an_apostrophe(
    estate: Estate,
) -> None:
    result = await export(DATABASE_URL=estate.url)

    assert result.returncode == 0, result.stderr.decode()
    _header, *rows = records_of(result.stdout, bom=True)
    assert by_channel(rows)[EVIL_CHANNEL] == [
        "'" + HYPERLINK,
        "'+4915123456789",  # shown in full as text, not computed to 4.91512E+12
        "'-ops@evil.example",
        "'@approved",
        "'\rverified",
        "registered",
        "'\tcloud_api",
        "live",
        "hub_status is 'live'",
        "blocked",
        "'-3.20 EUR",
        EVIL_CLIENT,
        EVIL_CHANNEL,
    ]
    # A value that already starts with ' and a formula character gets one more ', so ...
    assert by_channel(rows)[QUOTED_CHANNEL][6] == "''=1+1"
    # ... a script strips exactly one ' where the rest starts with ' = + - @ tab or CR.
    plain = await export("--plain", DATABASE_URL=estate.url)
    _header, *plain_rows = records_of(plain.stdout, bom=False)
    assert sorted([unguard_cell(cell) for cell in row] for row in rows) == sorted(plain_rows)


async def test_commas_quotes_and_line_breaks_are_quoted_as_rfc_4180_says(estate: Estate) -> None:
    result = await export(DATABASE_URL=estate.url)

    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode("utf-8")
    # Quoted, quotes doubled, the line break inside kept as it is stored.
    assert '"Müller, ""Die Bäcker""\nGmbH",\'+4930123456,büro@müller.example,' in text
    assert '\r\n"\'=HYPERLINK(""http://evil.example/?q=1"",""Click me"")",' in text
    # A CR is quoted too, so no reader ends the record there; a tab needs no quotes.
    assert ",\"'\rverified\",registered,'\tcloud_api," in text
    # Every record ends in CRLF; the only bare LF is the one inside the quoted name.
    assert text.endswith("\r\n")
    assert text.count("\n") == text.count("\r\n") + 1
    _header, *rows = records_of(result.stdout, bom=True)
    assert by_channel(rows)[QUOTED_CHANNEL][:3] == [
        QUOTED_NAME,
        "'+4930123456",
        "büro@müller.example",
    ]


# --- the plain form, the file ---------------------------------------------------------------


async def test_plain_has_no_bom_and_no_guard_but_the_same_quoting(estate: Estate) -> None:
    result = await export("--plain", DATABASE_URL=estate.url)

    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"Company legal name,WhatsApp number,")
    header, *rows = records_of(result.stdout, bom=False)
    assert header == HEADERS
    numbers = by_channel(rows)
    assert numbers[EVIL_CHANNEL][:3] == [HYPERLINK, EVIL_PHONE, EVIL_EMAIL]
    assert numbers[EVIL_CHANNEL][10] == "-3.20 EUR"
    assert numbers[QUOTED_CHANNEL][0] == QUOTED_NAME
    assert numbers[QUOTED_CHANNEL][6] == ALREADY_QUOTED
    assert '"Müller, ""Die Bäcker""\nGmbH",'.encode() in result.stdout


async def test_output_writes_the_file_and_nothing_to_standard_output(
    sqlite_estate: Estate, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "numbers.csv"
    target.write_text("an older export")
    target.chmod(0o600)

    result = await export("--output", str(target), DATABASE_URL=sqlite_estate.url)

    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""
    header, *rows = records_of(target.read_bytes(), bom=True)
    assert header == HEADERS
    assert set(by_channel(rows)) == set(sqlite_estate.hub.state.channels)
    assert target.stat().st_mode & 0o777 == 0o600  # whoever restricted it meant it
    assert names(folder) == ["numbers.csv"]  # no temporary file left


async def test_an_unwritable_output_is_one_line_and_exit_2(
    sqlite_estate: Estate, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-folder" / "numbers.csv"
    result = await export("--output", str(missing), DATABASE_URL=sqlite_estate.url)
    assert result.returncode == 2
    assert error_lines(result) == [
        f"hub-receiver: cannot write {missing}: No such file or directory"
    ]
    assert b"Traceback" not in result.stderr

    folder = tmp_path / "a-folder"
    folder.mkdir()
    result = await export("--output", str(folder), DATABASE_URL=sqlite_estate.url)
    assert result.returncode == 2
    assert error_lines(result) == [f"hub-receiver: cannot write {folder}: it is a directory"]
    assert names(folder) == []


async def test_a_database_that_is_down_is_one_line_exit_1_and_no_file(tmp_path: Path) -> None:
    target = tmp_path / "numbers.csv"
    down = "postgresql://postgres@127.0.0.1:9/hub"  # the discard port: nothing listens

    to_file = await export("--output", str(target), DATABASE_URL=down)
    to_stdout = await export(DATABASE_URL=down)

    for result in (to_file, to_stdout):
        assert result.returncode == 1
        assert b"Traceback" not in result.stderr
        (line,) = error_lines(result)
        assert line.startswith("hub-receiver: cannot use the database at DATABASE_URL=")
    assert to_stdout.stdout == b""  # not even the header: the first page is read first
    assert names(tmp_path) == []


# --- --refresh ------------------------------------------------------------------------------


async def test_refresh_reconciles_first_and_exports_what_serve_then_stored(estate: Estate) -> None:
    async with running_app(estate.settings):
        estate.hub.state.update_channel(
            ACME_LIVE_CHANNEL_ID,
            hub_status="pending_deletion",
            terminated_at="2026-12-31T00:00:00Z",
        )
        stale = await export(DATABASE_URL=estate.url)
        fresh = await export("--refresh", **estate.partner_variables(), SWEEP_INTERVAL=0.5)

    _header, *stale_rows = records_of(stale.stdout, bom=True)
    assert by_channel(stale_rows)[ACME_LIVE_CHANNEL_ID][7] == "live"
    assert fresh.returncode == 0, fresh.stderr.decode()
    _header, *rows = records_of(fresh.stdout, bom=True)
    row = by_channel(rows)[ACME_LIVE_CHANNEL_ID]
    assert row[7:9] == ["pending_deletion", "hub_status is 'pending_deletion'"]
    # The reconcile command's own report goes to stderr: standard output is the CSV alone.
    assert f"channel {ACME_LIVE_CHANNEL_ID}: live -> pending_deletion" in fresh.stderr.decode()


async def test_refresh_without_serve_or_a_worker_says_so_and_exports_what_is_stored(
    sqlite_estate: Estate,
) -> None:
    sqlite_estate.hub.state.update_channel(ACME_LIVE_CHANNEL_ID, hub_status="unregistered")

    # Nothing processes what reconcile records: the command gives up after two sweeps and
    # REFRESH_MARGIN (15 s), and says why the export is not fresh.
    result = await export("--refresh", **sqlite_estate.partner_variables(), SWEEP_INTERVAL=0.1)

    assert result.returncode == 0, result.stderr.decode()
    stderr = result.stderr.decode()
    assert "waiting for serve or a worker to store what reconcile found" in stderr
    assert "what reconcile found is not stored yet after 15s" in stderr
    _header, *rows = records_of(result.stdout, bom=True)
    assert by_channel(rows)[ACME_LIVE_CHANNEL_ID][7] == "live"


async def test_refresh_without_the_partner_api_stops_before_writing(
    sqlite_estate: Estate, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    result = await export(
        "--refresh", "--output", str(folder / "numbers.csv"), DATABASE_URL=sqlite_estate.url
    )

    assert result.returncode == 2
    assert error_lines(result) == [
        "hub-receiver: reconcile needs the Partner API: set D360_PARTNER_ID and "
        "D360_API_KEY (or D360_USERNAME and D360_PASSWORD)"
    ]
    assert result.stdout == b""
    assert names(folder) == []


async def test_refresh_with_broken_rules_says_why_without_a_traceback(
    sqlite_estate: Estate, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(
        "rules:\n  - name: typo\n    match: {evnt: channel_live}\n    notify: [ops]\n"
    )
    result = await export(
        "--refresh", **sqlite_estate.partner_variables(), RULES_PATH=rules, SWEEP_INTERVAL=0.1
    )

    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert "rule 'typo': match.evnt: unknown key" in result.stderr.decode()
    assert result.stdout == b""


# --- the generator and its pure parts ----------------------------------------------------------


async def test_the_generator_yields_the_header_then_a_chunk_per_page(sqlite_estate: Estate) -> None:
    async with open_runtime(sqlite_estate.settings, role="cli") as services:
        chunks = [chunk async for chunk in number_csv(services, page_size=2)]
        plain = [chunk async for chunk in number_csv(services, spreadsheet=False, page_size=2)]

    count = len(sqlite_estate.hub.state.channels)  # five: three samples and two of ours
    assert len(chunks) == 1 + (count + 1) // 2
    assert chunks[0] == BOM + ",".join(HEADERS) + "\r\n"
    assert plain[0] == ",".join(HEADERS) + "\r\n"
    rows = records_of("".join(chunks).encode(), bom=True)[1:]
    assert len(rows) == count


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        (HYPERLINK, "'" + HYPERLINK),
        ("+4915123456789", "'+4915123456789"),
        ("-3.20 EUR", "'-3.20 EUR"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcloud_api", "'\tcloud_api"),
        ("\rx", "'\rx"),
        ("'=1+1", "''=1+1"),  # already escaped by someone: one more, so unguarding is exact
        ("''", "'''"),
        ("'+49", "''+49"),
        ("'quoted", "'quoted"),  # a ' before anything harmless stays as it is
        ("'", "'"),
        ("", ""),
        ("Acme Bakery GmbH", "Acme Bakery GmbH"),
        ("a=b", "a=b"),  # only the first character counts
        (" =1+1", " =1+1"),
    ],
)
def test_guard_cell(value: str, cell: str) -> None:
    assert guard_cell(value) == cell
    assert unguard_cell(cell) == value


def test_unguarding_gives_back_every_value_exactly() -> None:
    # Every string of up to five of the characters that matter, and a harmless one.
    alphabet = ["'", "=", "+", "-", "@", "\t", "\r", "a"]
    for size in range(6):
        for letters in itertools.product(alphabet, repeat=size):
            value = "".join(letters)
            assert unguard_cell(guard_cell(value)) == value, repr(value)


@pytest.mark.parametrize(
    ("item", "company", "balance"),
    [
        ({"organisation": "Acme Bakery GmbH", "client_name": "Jana"}, "Acme Bakery GmbH", ""),
        ({"organisation": None, "client_name": "Jana"}, "Jana", ""),
        ({"organisation": "", "client_name": "Jana"}, "Jana", ""),
        ({"organisation": None, "client_name": None}, "", ""),
        ({"balance": "12.50", "currency": "EUR"}, "", "12.50 EUR"),
        ({"balance": "0", "currency": "USD"}, "", "0 USD"),
        ({"balance": "7.1", "currency": None}, "", "7.1"),
        ({"balance": None, "currency": "EUR"}, "", ""),
    ],
)
def test_number_row_company_and_balance(
    item: dict[str, object], company: str, balance: str
) -> None:
    row = number_row(item)
    assert row[0] == company
    assert row[10] == balance


def test_number_row_puts_each_item_field_in_its_column_and_none_as_empty() -> None:
    item = {
        "organisation": "Acme Bakery GmbH",
        "phone_number": "+4915112345678",
        "contact_email": "ops@acme.example",
        "message_on_behalf": "approved",
        "business_verification": "verified",
        "registration": "registered",
        "hosting_platform_type": "cloud_api",
        "status": "live",
        "status_why": "hub_status is 'live'",
        "health": "available",
        "balance": "42.5",
        "currency": "EUR",
        "client_id": "Vb7xR2CL",
        "id": "kJ2mQ8CH",
    }
    assert dict(zip(COLUMNS, number_row(item), strict=True)) == {
        "Company legal name": "Acme Bakery GmbH",
        "WhatsApp number": "+4915112345678",
        "Contact email": "ops@acme.example",
        "Message on behalf": "approved",
        "Meta business verification": "verified",
        "Number registration": "registered",
        "Hosting platform type": "cloud_api",
        "Status": "live",
        "Status reason": "hub_status is 'live'",
        "Health": "available",
        "Balance": "42.5 EUR",
        "Client ID": "Vb7xR2CL",
        "Channel ID": "kJ2mQ8CH",
    }
    assert number_row(dict.fromkeys(item)) == [""] * len(COLUMNS)
