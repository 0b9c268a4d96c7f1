"""`numbers set-key` and `health check` as a person runs them."""

from __future__ import annotations

import io
import logging

import pytest

from receiver.cli.main import main
from tests.support.fakes import Hub

SECRET = "m4wL9dOqYj0rQF0xN6cXb6oQyGm1r2sP3t4u5v6w7x8="
KEY = "the-numbers-secret-api-key"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, hub: Hub) -> Hub:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("D360_WABA_BASE", hub.url)
    monkeypatch.setenv("D360_WABA_V2_BASE", hub.url)
    monkeypatch.setenv("LOG_FORMAT", "json")
    return hub


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


async def test_set_key_reads_stdin_and_never_shows_the_key(
    environment: Hub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    environment.state.set_health("kJ2mQ8CH", api_key=KEY, status="BLOCKED")
    assert await _off_loop(["numbers", "set-key", "kJ2mQ8CH"], monkeypatch, KEY + "\n") == 2
    assert "KEYS_SECRET is not set" in capsys.readouterr().err

    monkeypatch.setenv("KEYS_SECRET", SECRET)
    assert await _off_loop(["numbers", "set-key", "kJ2mQ8CH"], monkeypatch, KEY + "\n") == 0
    assert await _off_loop(["health", "check"], monkeypatch) == 0
    first = capsys.readouterr().out
    assert "kJ2mQ8CH  blocked (was unknown)" in first
    assert await _off_loop(["health", "check"], monkeypatch) == 0
    again = capsys.readouterr()
    assert "kJ2mQ8CH  checked at " in again.out and ", next after " in again.out
    assert len(environment.state.health_calls("kJ2mQ8CH")) == 1
    assert KEY not in first + again.out + again.err + caplog.text


async def _off_loop(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    # The CLI calls asyncio.run(); run it on a thread, outside this test's loop.
    import asyncio

    return await asyncio.to_thread(run, argv, monkeypatch, stdin)
