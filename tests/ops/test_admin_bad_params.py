"""Odd admin requests get a JSON reason, never a 500, and a refused one's query is not logged."""

from __future__ import annotations

import logging

import pytest

from tests.ops.support import ADMIN_TOKEN, AUTH, Sink, channel_live, post_webhook, settle
from tests.support.app import RunningApp

BEYOND_64_BITS = "99999999999999999999999"
PASTED_TOKEN = "pasted-Secr3t-Jw27Ux"


async def test_ids_beyond_64_bits_are_not_found(app: RunningApp, sink: Sink) -> None:
    await post_webhook(app, channel_live())
    await settle(app)
    for method, path in (
        ("GET", f"/admin/events/{BEYOND_64_BITS}"),
        ("POST", f"/admin/events/{BEYOND_64_BITS}/replay"),
        ("GET", f"/admin/deliveries/{BEYOND_64_BITS}"),
        ("POST", f"/admin/deliveries/{BEYOND_64_BITS}/retry"),
        ("GET", f"/admin/events/{2**63}"),
    ):
        response = await app.client.request(method, path, headers=AUTH)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"] == "not_found"


async def test_cursors_and_searches_beyond_64_bits_are_refused_or_find_nothing(
    app: RunningApp, sink: Sink
) -> None:
    await post_webhook(app, channel_live())
    await settle(app)
    for path in ("/admin/events", "/admin/deliveries"):
        response = await app.client.get(path, params={"cursor": BEYOND_64_BITS}, headers=AUTH)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"] == "invalid_parameter"
        assert "cursor" in response.json()["detail"]
    response = await app.client.get(
        "/admin/events", params={"search": BEYOND_64_BITS}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 0


@pytest.mark.parametrize("path", ["/admin/events", "/admin/deliveries", "/admin/channels"])
async def test_an_unknown_state_is_refused_naming_the_known_ones(
    sqlite_app: RunningApp, path: str
) -> None:
    response = await sqlite_app.client.get(path, params={"state": "bogus"}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_parameter"
    assert "state must be one of" in response.json()["detail"]


async def test_a_token_pasted_into_the_query_of_a_refused_request_is_not_logged(
    sqlite_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    wrong = {"authorization": f"Bearer {ADMIN_TOKEN}x"}
    for headers, status in (({}, 401), (wrong, 403), (AUTH, 422)):
        response = await sqlite_app.client.get(
            "/admin/events", params={"token": PASTED_TOKEN}, headers=headers
        )
        assert response.status_code == status

    admin_lines = [r for r in caplog.records if r.name == "receiver.admin"]
    assert len(admin_lines) == 3
    # The service's records only: `httpx` here is this test's own client.
    for record in (r for r in caplog.records if r.name != "httpx"):
        assert PASTED_TOKEN not in repr(record.__dict__), record.name
    assert [getattr(r, "params", None) for r in admin_lines] == [["token"]] * 3


async def test_an_answered_request_still_logs_its_filters(
    sqlite_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await sqlite_app.client.get(
        "/admin/events", params={"channel": "kJ2mQ8CH"}, headers=AUTH
    )
    assert response.status_code == 200
    [line] = [r for r in caplog.records if r.name == "receiver.admin"]
    assert getattr(line, "query", None) == "channel=kJ2mQ8CH"
