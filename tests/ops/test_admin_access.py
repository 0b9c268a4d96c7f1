"""Who may use the admin API: nobody when ADMIN_TOKEN is unset, else only its bearer."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from receiver.settings import Settings
from tests.ops.support import ADMIN_TOKEN, AUTH
from tests.support.app import RunningApp, running_app

ENDPOINTS = [
    ("GET", "/admin/events"),
    ("GET", "/admin/events/1"),
    ("POST", "/admin/events/1/replay"),
    ("GET", "/admin/channels"),
    ("GET", "/admin/channels/kJ2mQ8CH"),
    ("GET", "/admin/deliveries"),
    ("GET", "/admin/deliveries/1"),
    ("POST", "/admin/deliveries/1/retry"),
    ("GET", "/admin/rules"),
    ("POST", "/admin/rules/reload"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_the_admin_api_refuses_a_request_without_a_token(
    sqlite_app: RunningApp, method: str, path: str
) -> None:
    response = await sqlite_app.client.request(method, path)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_the_admin_api_refuses_a_wrong_token(
    sqlite_app: RunningApp, method: str, path: str
) -> None:
    wrong = {"authorization": f"Bearer {ADMIN_TOKEN}x"}
    response = await sqlite_app.client.request(method, path, headers=wrong)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "detail": "the admin token is not valid"}


async def test_the_admin_api_wants_the_bearer_scheme(sqlite_app: RunningApp) -> None:
    basic = {"authorization": f"Basic {ADMIN_TOKEN}"}
    response = await sqlite_app.client.get("/admin/events", headers=basic)
    assert response.status_code == 401


async def test_the_admin_api_answers_its_bearer(sqlite_app: RunningApp) -> None:
    response = await sqlite_app.client.get("/admin/events", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"items": [], "count": 0, "next_cursor": None}


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_the_admin_api_does_not_exist_without_admin_token(
    ops_settings: Callable[..., Settings], sqlite_url: str, method: str, path: str
) -> None:
    async with running_app(ops_settings(sqlite_url, admin_token=None)) as app:
        response = await app.client.request(method, path, headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"] == "admin_disabled"
    assert "admin API disabled" in response.json()["detail"]


async def test_an_empty_admin_token_counts_as_unset(
    ops_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    async with running_app(ops_settings(sqlite_url, admin_token="")) as app:
        response = await app.client.get("/admin/events", headers={"authorization": "Bearer x"})
    assert response.status_code == 404
