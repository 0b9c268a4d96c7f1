"""The numbers' API keys: encrypted at rest, refused without KEYS_SECRET, CSV errors located."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from receiver.settings import Settings
from receiver.watch.keys import (
    KeysError,
    check_keys_readable,
    import_keys,
    remove_key,
    set_key,
)
from tests.watch.support import open_services

SECRET = "m4wL9dOqYj0rQF0xN6cXb6oQyGm1r2sP3t4u5v6w7x8="
OTHER_SECRET = "Qm9ndXMta2V5LWZvci10ZXN0cy0xMjM0NTY3ODkwYWI="
KEY = "the-numbers-secret-api-key"


async def test_a_key_is_stored_encrypted_and_read_back(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with open_services(make_settings(database_url=database_url, keys_secret=SECRET)) as s:
        await set_key(s, channel_id="kJ2mQ8CH", api_key=f"  {KEY}\n")
        async with s.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT api_key FROM number_health"))).scalar_one()
        assert KEY not in stored
        assert await check_keys_readable(s) == 1
        assert await remove_key(s, channel_id="kJ2mQ8CH")
        assert not await remove_key(s, channel_id="kJ2mQ8CH")


async def test_set_key_without_keys_secret_says_how_to_make_one(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with open_services(make_settings(database_url=sqlite_url)) as services:
        with pytest.raises(KeysError, match=r"Fernet\.generate_key"):
            await set_key(services, channel_id="kJ2mQ8CH", api_key=KEY)


async def test_start_up_refuses_keys_it_cannot_read(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with open_services(make_settings(database_url=sqlite_url, keys_secret=SECRET)) as s:
        await set_key(s, channel_id="kJ2mQ8CH", api_key=KEY)
    async with open_services(make_settings(database_url=sqlite_url, keys_secret=OTHER_SECRET)) as s:
        with pytest.raises(KeysError, match="cannot be read with this KEYS_SECRET") as caught:
            await check_keys_readable(s)
        assert KEY not in str(caught.value)
    async with open_services(make_settings(database_url=sqlite_url)) as s:
        with pytest.raises(KeysError, match="1 numbers' API keys are stored, but KEYS_SECRET"):
            await check_keys_readable(s)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("channel_id,api_key\nkJ2mQ8CH,k1\npT4nR7CH\n", ":3: expected 2 columns"),
        ("kJ2mQ8CH,k1\n,k2\n", ":2: a channel id is 1-64 printable characters"),
        ("kJ2mQ8CH,k1\nkJ2mQ8CH,k2\n", ":2: channel kJ2mQ8CH already given on line 1"),
        ("kJ2mQ8CH,has space\n", ":1: that does not look like an API key"),
        ("channel_id,api_key\n", ": no channel_id,api_key rows"),
    ],
)
async def test_import_keys_errors_name_the_file_and_line_and_store_nothing(
    sqlite_url: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    content: str,
    error: str,
) -> None:
    path = tmp_path / "keys.csv"
    path.write_text(content)
    async with open_services(make_settings(database_url=sqlite_url, keys_secret=SECRET)) as s:
        with pytest.raises(KeysError) as caught:
            await import_keys(s, path=path)
        assert str(caught.value).startswith(f"{path}{error}")
        assert "k1" not in str(caught.value) and "k2" not in str(caught.value)
        assert await check_keys_readable(s) == 0


async def test_import_keys_stores_every_row(
    sqlite_url: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("channel_id,api_key\nkJ2mQ8CH,k1\n\npT4nR7CH,k2\n")
    async with open_services(make_settings(database_url=sqlite_url, keys_secret=SECRET)) as s:
        assert await import_keys(s, path=path) == 2
        assert await check_keys_readable(s) == 2
