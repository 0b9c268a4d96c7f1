"""What a person does on the dashboard: retry a dead delivery, test the rules, replay an event."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import FloatRect, Page, expect

from tests.pipeline.support import (
    ACME,
    ACME_EMAIL,
    ACME_LIVE,
    ACME_PHONE,
    all_deliveries,
    attempts_of,
    deliveries_of,
    webhook,
)
from tests.support.samples import sample, sample_json
from tests.support.waiting import eventually
from tests.ui.support import (
    LIFECYCLE_RULE,
    LIVE,
    Dashboard,
    screenshot_path,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module")]

CLIENT_LIVE_RULE = "client hears their number is live"


async def test_a_dead_delivery_is_retried_from_the_deliveries_page(dashboard: Dashboard) -> None:
    sink = dashboard.sink.state
    sink.fail_path("/ops", 404)  # a permanent failure: dead after one attempt
    await dashboard.post(webhook("channel_live", ACME_LIVE, client_id=ACME))
    await dashboard.settle(events=1)
    sessions = dashboard.app.services.sessions
    [dead] = await deliveries_of(sessions, rule=LIFECYCLE_RULE)
    assert dead.state == "dead"

    tab = await dashboard.open("/ui/deliveries")
    page = tab.page
    row = page.locator(f'section.dead tr[data-delivery="{dead.id}"]')
    await expect(row.locator(".badge")).to_have_text("dead")
    await expect(row).to_contain_text("404")
    sink.heal_path("/ops")
    await row.get_by_role("button", name="Retry").click()

    await expect(page.get_by_role("status")).to_have_text(
        "Retry scheduled: the delivery is pending and will be sent shortly."
    )
    await expect(page.locator("section.dead")).to_have_count(0)
    retried = page.locator(f'tr[data-delivery="{dead.id}"]')
    await expect(retried.locator(".badge")).to_have_text("sent", timeout=LIVE)
    await expect(retried.get_by_role("button", name="Retry")).to_have_count(0)

    received = await sink.wait_for(2)
    assert [(r.path, r.status) for r in received] == [("/ops", 404), ("/ops", 200)]
    assert received[1].body["title"].startswith(f"Number is live: {ACME_PHONE}")
    tries = await attempts_of(sessions, dead.id)
    assert [t.outcome for t in tries] == ["dead", "requeued", "sent"]
    assert tries[1].error is not None
    assert "retried by hand (dashboard from 127.0.0.1)" in tries[1].error


async def test_the_rules_page_shows_which_rules_a_pasted_event_fires(
    dashboard: Dashboard,
) -> None:
    tab = await dashboard.open("/ui/rules")
    page = tab.page
    await expect(page.locator("table.rules")).to_contain_text(LIFECYCLE_RULE)

    await page.locator("#event").fill(sample("partner_webhook.channel_live.json").decode())
    await page.locator("#status").fill("live")
    await page.get_by_role("button", name="Test", exact=True).click()

    result = page.locator(".result")
    await expect(result.locator("h3")).to_contain_text("fire for channel_live (none → live)")
    fired = result.locator("article.verdict.fired")
    lifecycle = fired.filter(has_text=LIFECYCLE_RULE)
    await expect(lifecycle).to_have_count(1)
    await expect(lifecycle.locator(".message .title")).to_have_text(
        f"Number is live: {ACME_PHONE} (Jana Beispiel)"
    )
    await expect(lifecycle.locator(".message .body")).to_contain_text("Status: new → live")
    await expect(fired.filter(has_text=CLIENT_LIVE_RULE)).to_have_count(1)
    await expect(result.locator("article.verdict.missed").first).to_contain_text("does not fire")
    assert dashboard.sink.state.received == []  # a test sends nothing


async def test_replay_from_the_event_page_sends_every_match_again(dashboard: Dashboard) -> None:
    sink, mailbox = dashboard.sink.state, dashboard.mailbox
    body = sample_json("partner_webhook.channel_live.json")  # as 360dialog sends it
    body["id"] = str(uuid.uuid4())
    event_id = await dashboard.post(body)
    await dashboard.settle(events=1)
    await sink.wait_for(1)
    await mailbox.wait_for(1)

    tab = await dashboard.open("/ui/events")
    page = tab.page
    await page.locator(f'tr[data-event="{event_id}"] a').first.click()
    await expect(page).to_have_url(f"{dashboard.url}/ui/events/{event_id}")
    sent = page.locator("article.delivery").filter(has_text=LIFECYCLE_RULE)
    await expect(sent.locator(".badge")).to_have_text("sent")
    await expect(page.locator("h1")).to_contain_text(f"Event #{event_id}")
    await _screenshot_of_the_whole_page(tab.page, "event.png")

    await page.get_by_role("link", name="Replay…").click()
    await expect(page.get_by_role("heading", name="Would send now")).to_be_visible()
    plan = page.locator("table.plan tbody tr").filter(has_text=LIFECYCLE_RULE)
    await expect(plan).to_contain_text("= sent before")
    await expect(plan).to_contain_text("ops")
    await expect(page.locator("table.plan tbody tr")).to_have_count(2)  # and the client's email
    await expect(page.locator("table.plan tbody tr").nth(1)).to_contain_text("= sent before")
    assert (len(sink.received), len(mailbox.messages)) == (1, 1)  # a dry run sends nothing

    await page.get_by_role("button", name="Send every match again").click()
    await expect(page).to_have_url(f"{dashboard.url}/ui/events/{event_id}?notice=replayed")
    await expect(page.get_by_role("status")).to_have_text(
        "Replayed: the new deliveries are on their way."
    )
    received = await sink.wait_for(2)
    await mailbox.wait_for(2)
    await eventually(lambda: _all_finished(dashboard), what="the replay's deliveries")
    # Exactly one more of each: one rule sends to the team's chat, one emails the client.
    assert len(sink.received) == 2
    assert [m.to for m in mailbox.messages] == [(ACME_EMAIL,), (ACME_EMAIL,)]
    assert received[1].body["title"] == received[0].body["title"]
    await expect(sent.locator(".badge")).to_have_text(["sent", "sent"], timeout=LIVE)


async def _all_finished(dashboard: Dashboard) -> bool:
    rows = await all_deliveries(dashboard.app.services.sessions)
    return all(row.state not in ("pending", "sending") for row in rows)


async def _screenshot_of_the_whole_page(page: Page, name: str) -> None:
    """The page at 1280 px wide, down to its end or 1,600 px, whichever comes first."""
    viewport = page.viewport_size
    assert viewport is not None
    height = await page.evaluate("document.documentElement.scrollHeight")
    clip: FloatRect = {"x": 0, "y": 0, "width": viewport["width"], "height": min(height, 1600)}
    await page.screenshot(path=screenshot_path(name), full_page=True, clip=clip)
