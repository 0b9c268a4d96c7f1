"""Bodies we cannot read as UTF-8 JSON: compressed or mis-encoded, each named in its answer."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from receiver.settings import Settings
from tests.support.app import RunningApp, running_app
from tests.support.events import SECRET, event_body, signed, stored_events

MakeSettings = Callable[..., Settings]
URL = "/webhooks/partner"


@pytest.fixture
async def app(make_settings: MakeSettings, database_url: str) -> AsyncIterator[RunningApp]:
    settings = make_settings(database_url=database_url, d360_webhook_secret=SECRET)
    async with running_app(settings) as running:
        yield running


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
async def test_a_compressed_body_is_refused_with_415_naming_the_encoding(
    app: RunningApp, encoding: str
) -> None:
    body = gzip.compress(orjson.dumps(event_body(1)))
    headers = {**signed(body), "content-encoding": encoding}

    response = await app.client.post(URL, content=body, headers=headers)

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_content_encoding"
    assert encoding in response.json()["detail"]
    assert "UTF-8" not in response.json()["detail"]
    assert await stored_events(app.services.sessions) == []


async def test_an_identity_content_encoding_is_accepted(app: RunningApp) -> None:
    body = orjson.dumps(event_body(1))
    headers = {**signed(body), "content-encoding": "identity"}

    response = await app.client.post(URL, content=body, headers=headers)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"event": "channel_live", "data": {"name": "\xff"}}',  # not UTF-8 at all
        b'{"event": "channel_live", "data": {"name": "\xed\xa0\x80"}}',  # an encoded surrogate
        '{"event": "channel_live", "data": {"name": "Müller"}}'.encode("latin-1"),
    ],
    ids=["stray byte", "encoded surrogate", "latin-1"],
)
async def test_a_body_that_is_not_utf8_is_refused_with_a_clear_400(
    app: RunningApp, body: bytes
) -> None:
    response = await app.client.post(URL, content=body, headers=signed(body))

    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "invalid_utf8"
    assert "not valid UTF-8" in answer["detail"]
    assert "offset" in answer["detail"]
    assert "surrogates" not in answer["detail"]
    assert await stored_events(app.services.sessions) == []


async def test_utf8_text_beyond_ascii_is_stored_as_sent(app: RunningApp) -> None:
    text = '{"event": "channel_live", "data": {"id": "kJ2mQ8CH", "name": "Müller & Søn 🚀"}}'
    body = text.encode()

    response = await app.client.post(URL, content=body, headers=signed(body))

    assert response.status_code == 200, response.text
    [event] = await stored_events(app.services.sessions)
    assert event.raw_body == text
