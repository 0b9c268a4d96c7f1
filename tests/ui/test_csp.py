"""The pages keep to their own Content-Security-Policy: no inline script or style, nothing
from elsewhere. Chromium reports every violation on the console; browsing every page must
report none (the last step proves that one would be seen)."""

from __future__ import annotations

import pytest
from playwright.async_api import Response, expect

from tests.pipeline.support import ACME_LIVE, all_events
from tests.support.samples import sample
from tests.support.waiting import eventually
from tests.ui.support import ESTATE_STATUSES, LIVE, Dashboard, Tab

pytestmark = [pytest.mark.asyncio(loop_scope="module")]


def is_live_refresh(response: Response) -> bool:
    return response.request.headers.get("x-live") == "1" and response.ok


async def test_no_page_breaks_the_content_security_policy(dashboard: Dashboard) -> None:
    await dashboard.seed_estate()
    stored = await all_events(dashboard.app.services.sessions)
    event_id = stored[0].id
    tab = await dashboard.new_tab()
    page = tab.page

    answer = await page.goto("/ui/login")
    await _has_the_policy(answer)
    await tab.log_in(then="/ui/")
    await expect(page.locator("article.card")).to_have_count(len(ESTATE_STATUSES))
    async with page.expect_response(is_live_refresh, timeout=LIVE):
        pass  # live.js (script-src 'self') fetched the region (connect-src 'self')

    for path in (
        f"/ui/numbers/{ACME_LIVE}",
        "/ui/events",
        f"/ui/events/{event_id}",
        f"/ui/events/{event_id}/replay",
        "/ui/deliveries",
        "/ui/rules",
    ):
        answer = await page.goto(path)
        await _has_the_policy(answer)
        await expect(page.locator("main")).to_be_visible()
    await page.locator("#event").fill(sample("partner_webhook.channel_live.json").decode())
    await page.locator("#status").fill("live")
    await page.get_by_role("button", name="Test", exact=True).click()
    await expect(page.locator(".result article.verdict.fired").first).to_be_visible()

    assert tab.csp_violations() == []
    assert tab.page_errors == []
    await _a_violation_would_be_seen(tab)


async def _has_the_policy(answer: Response | None) -> None:
    assert answer is not None
    policy = await answer.header_value("content-security-policy")
    assert policy is not None
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy


async def _a_violation_would_be_seen(tab: Tab) -> None:
    """An inline script is refused, and the refusal reaches `tab.console`."""
    ran = await tab.page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.inlineScriptRan = true";
            document.body.appendChild(script);
            return window.inlineScriptRan === true;
        }"""
    )
    assert ran is False

    async def seen() -> bool:
        return bool(tab.csp_violations())

    await eventually(seen, what="Chromium's report of the refused inline script")
