"""The permission callback page is for a browser: it can't be framed, sniffed or leak its URL."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

import httpx
import pytest

from receiver.settings import Settings
from tests.support.app import running_app

MakeSettings = Callable[..., Settings]
URL = "/callbacks/permission"
GOOD = "client=Vb7xR2CL&channels=[kJ2mQ8CH]"
BAD = "channels=[kJ2mQ8CH]"


def assert_browser_hardened(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "script-src" not in directives  # so default-src 'none' forbids every script
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("query", "status"), [(GOOD, 200), (BAD, 400), ("client=x&" + "a" * 9000, 400)]
)
async def test_every_callback_page_is_sent_with_the_browser_security_headers(
    make_settings: MakeSettings, database_url: str, query: str, status: int
) -> None:
    async with running_app(make_settings(database_url=database_url)) as app:
        response = await app.client.get(f"{URL}?{query}")

    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert_browser_hardened(response)


async def test_the_policy_allows_exactly_the_pages_own_style(
    make_settings: MakeSettings, database_url: str
) -> None:
    async with running_app(make_settings(database_url=database_url)) as app:
        response = await app.client.get(f"{URL}?{GOOD}")

    [style] = re.findall(r"<style>(.*?)</style>", response.text, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in response.headers["content-security-policy"]


async def test_the_redirect_to_the_partner_page_sends_no_referrer(
    make_settings: MakeSettings, database_url: str
) -> None:
    settings = make_settings(
        database_url=database_url, permission_redirect_url="https://partner.example/welcome"
    )
    async with running_app(settings) as app:
        response = await app.client.get(f"{URL}?{GOOD}")

    assert response.status_code == 303
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
