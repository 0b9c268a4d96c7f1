"""Logging in to the dashboard through its form, in a real browser."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.ui.support import ADMIN_TOKEN, Dashboard

pytestmark = [pytest.mark.asyncio(loop_scope="module")]

WRONG_TOKEN = "not-the-Adm1n-token"


async def test_a_wrong_token_is_refused_and_the_right_one_opens_the_numbers_page(
    dashboard: Dashboard,
) -> None:
    tab = await dashboard.new_tab()
    page = tab.page

    await page.goto("/ui/")
    await expect(page).to_have_url(f"{dashboard.url}/ui/login?next=%2Fui%2F")
    await page.locator("#token").fill(WRONG_TOKEN)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("That is not the admin token.")
    refused_html = await page.content()
    assert await page.context.cookies() == []

    await page.locator("#token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{dashboard.url}/ui/")
    await expect(page.get_by_role("heading", name="Numbers", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()

    [cookie] = await page.context.cookies()
    assert cookie["name"] == "hub_session"
    assert (cookie["path"], cookie["httpOnly"], cookie["sameSite"]) == ("/ui/", True, "Strict")
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
    html = await page.content()
    for shown in (html, refused_html, page.url, cookie["value"]):
        assert ADMIN_TOKEN not in shown
    assert WRONG_TOKEN not in refused_html  # the form is not refilled with what was typed
    assert ADMIN_TOKEN not in "".join(tab.console)
