"""A database that cannot commit: nothing is acknowledged, so 360dialog keeps the event."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from receiver.http.loopback import free_port
from receiver.settings import Settings
from tests.support.app import RunningApp, running_app
from tests.support.events import SECRET, signed
from tests.support.samples import sample
from tests.support.servers import PG_HOST, PG_USER

MakeSettings = Callable[..., Settings]


@pytest.fixture
async def app(make_settings: MakeSettings) -> AsyncIterator[RunningApp]:
    closed = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{free_port()}/hub"
    settings = make_settings(database_url=closed, d360_webhook_secret=SECRET)
    async with running_app(settings) as running:
        yield running


async def test_a_webhook_gets_a_quick_503_with_retry_after_and_never_a_2xx(app: RunningApp) -> None:
    for name in ("partner_webhook.channel_live.json", "partner_webhook.client_created.json"):
        body = sample(name)
        started = time.monotonic()
        response = await app.client.post("/webhooks/partner", content=body, headers=signed(body))
        assert time.monotonic() - started < 3.0  # well inside 360dialog's 5 s limit
        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {
            "error": "storage_unavailable",
            "detail": "the event could not be stored; retry later",
        }


async def test_a_permission_callback_gets_a_503_page(app: RunningApp) -> None:
    response = await app.client.get("/callbacks/permission?client=Vb7xR2CL&channels=%5BkJ2mQ8CH%5D")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text
    assert "try again" in response.text.lower()


async def test_bad_input_is_still_refused_for_what_it_is(app: RunningApp) -> None:
    bad = await app.client.post(
        "/webhooks/partner", content=b"{}", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 401
    malformed = await app.client.post("/webhooks/partner", content=b"{", headers=signed(b"{"))
    assert malformed.status_code == 400
