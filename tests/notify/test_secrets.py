from __future__ import annotations

import logging

import pytest

from receiver.notify.apprise import mask, send, validate_target
from tests.support.fakes import Sink

PASSWORD = "Hunter2Secret"
HEADER_TOKEN = "hdrTok3nValue"


def secret_url(sink: Sink) -> str:
    return sink.json_url(auth=f"bot:{PASSWORD}", query=f"+X-Api-Token={HEADER_TOKEN}")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert HEADER_TOKEN not in text


@pytest.mark.parametrize("fail_with", [None, 500, 404])
async def test_a_secret_url_never_shows_in_the_result_or_the_logs(
    sink: Sink, caplog: pytest.LogCaptureFixture, fail_with: int | None
) -> None:
    # Even with everything at DEBUG, where Apprise would print URLs.
    caplog.set_level(logging.DEBUG)
    if fail_with is not None:
        sink.state.always_fail(fail_with)

    result = await send(secret_url(sink), title="t", body="b")

    assert result.ok is (fail_with is None)
    assert_no_secret(str(result), result.error or "", result.target, caplog.text)
    assert "apprise" in {r.name for r in caplog.records}


async def test_the_sink_receives_the_secrets_it_needs_but_does_not_keep_them(sink: Sink) -> None:
    await send(secret_url(sink), title="t", body="b")

    [received] = await sink.state.wait_for(1)
    assert received.headers["authorization"] == "***"
    assert received.headers["x-api-token"] == "***"


@pytest.mark.parametrize(
    "url",
    [
        f"json://bot:{PASSWORD}@",
        f"json://bot:{PASSWORD}@127.0.0.1:1/x?method=BOGUS",
        f"slack://{PASSWORD}",
        f"discord://{PASSWORD}",
        f"mailto://user:{PASSWORD}@",
        f"nosuch://user:{PASSWORD}@host/{HEADER_TOKEN}",
    ],
)
async def test_a_secret_url_that_cannot_load_leaks_nothing(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    result = await send(url, title="t", body="b")
    problem = validate_target(url)

    assert result.permanent
    assert problem is not None
    assert_no_secret(str(result), result.error or "", problem, mask(url), caplog.text)


async def test_a_timed_out_secret_url_leaks_nothing(
    sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sink.state.hang(30)

    result = await send(secret_url(sink), title="t", body="b", timeout=0.3)

    assert not result.ok
    assert_no_secret(str(result), caplog.text)


def test_mask_hides_passwords_tokens_and_custom_header_values() -> None:
    masked = mask(f"json://bot:{PASSWORD}@example.com/hook?+X-Api-Token={HEADER_TOKEN}")

    assert masked.startswith("json://bot:****@example.com/****")  # the path may be a secret
    assert_no_secret(masked)


def test_mask_keeps_enough_to_recognise_a_slack_target() -> None:
    masked = mask("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#alerts")

    assert masked.startswith("slack://")
    assert "TIiajkdnlazkcOXrIdevi7F" not in masked


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"nosuch://u:{PASSWORD}@h", "nosuch://***"),
        (f"{PASSWORD}", "***"),
        ("", "***"),
        ("::::", "***"),
        ("json://[::1", "json://***"),
    ],
)
def test_mask_never_raises_and_falls_back_to_the_scheme(url: str, expected: str) -> None:
    assert mask(url) == expected


def test_validate_target_accepts_urls_apprise_can_load() -> None:
    assert validate_target("json://127.0.0.1:8080/hook") is None
    assert validate_target("mailtos://user:pw@smtp.example.com?from=hub@example.com") is None
    assert validate_target("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#alerts") is None


@pytest.mark.parametrize("url", ["", "   ", "nosuch://x", "json://", "slack://only-one"])
def test_validate_target_explains_urls_apprise_cannot_load(url: str) -> None:
    problem = validate_target(url)

    assert problem is not None
    assert problem
