"""The numbers page in a real browser: live cards, the CSV download, hostile names, a phone."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.async_api import Page, expect

from receiver.dev.sample_data import build_channel, build_client
from tests.pipeline.support import ACME, ACME_DRAFT, ACME_LIVE, ACME_PHONE, all_events, webhook
from tests.ui.support import (
    ESTATE_STATUSES,
    LIVE,
    PHONE,
    Dashboard,
    screenshot_path,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module")]

SCRIPT_NAME = "<script>alert(1)</script>"
HOSTILE = "Xs9sS1CL"
HOSTILE_CHANNEL = "Xs9sS1CH"


async def test_a_card_changes_status_on_the_open_page_when_a_webhook_says_so(
    dashboard: Dashboard,
) -> None:
    await dashboard.seed_estate()
    tab = await dashboard.open("/ui/")
    page = tab.page
    cards = page.locator("article.card")
    await expect(cards).to_have_count(len(ESTATE_STATUSES))
    for channel_id, status in ESTATE_STATUSES.items():
        badge = page.locator(f'article.card[data-channel="{channel_id}"] .badge')
        await expect(badge).to_have_text(status)
    await page.screenshot(path=screenshot_path("numbers.png"), full_page=True)

    # Anything set on this document survives only if the page is never reloaded.
    await page.evaluate("window.stillTheSamePage = true")
    draft = page.locator(f'article.card[data-channel="{ACME_DRAFT}"]')
    await expect(draft.locator(".why")).to_have_text("hub_status is 'draft'")
    dashboard.hub.state.update_channel(
        ACME_DRAFT,
        hub_status="live",
        status="running",
        integration={"enabled": True, "app_id": "204712", "state": "running"},
        waba_account={"status": "approved", "fb_account_status": "verified"},
    )
    await dashboard.post(webhook("channel_live", ACME_DRAFT, client_id=ACME))

    await expect(draft.locator(".badge")).to_have_text("live", timeout=LIVE)
    await expect(draft.locator(".why")).to_have_text("hub_status is 'live'")
    await expect(draft).to_have_class(re.compile(r"\bcard-live\b"))
    assert await page.evaluate("window.stillTheSamePage") is True
    await expect(cards).to_have_count(len(ESTATE_STATUSES))
    assert tab.page_errors == []


async def test_the_csv_download_lists_every_number_with_its_status(
    dashboard: Dashboard,
) -> None:
    await dashboard.seed_estate()
    tab = await dashboard.open("/ui/")
    page = tab.page

    async with page.expect_download() as started:
        await page.get_by_role("link", name="Download CSV").click()
    download = await started.value
    assert re.fullmatch(r"numbers-\d{8}-\d{4}\.csv", download.suggested_filename)
    raw = (await download.path()).read_bytes()

    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM that makes Excel read UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    header, numbers = rows[0], rows[1:]
    assert header == [
        "Company legal name",
        "WhatsApp number",
        "Contact email",
        "Message on behalf",
        "Meta business verification",
        "Number registration",
        "Hosting platform type",
        "Status",
        "Status reason",
        "Health",
        "Balance",
        "Client ID",
        "Channel ID",
    ]
    by_channel = {row[-1]: dict(zip(header, row, strict=True)) for row in numbers}
    assert {channel: row["Status"] for channel, row in by_channel.items()} == ESTATE_STATUSES
    acme = by_channel[ACME_LIVE]
    # A leading + is kept as text, not read as a formula (ops/export.py).
    assert acme["WhatsApp number"] == f"'{ACME_PHONE}"
    assert (acme["Company legal name"], acme["Client ID"]) == ("Acme Bakery GmbH", ACME)
    assert acme["Contact email"] == "ops@acme-bakery.example"


async def test_a_client_name_holding_a_script_is_shown_as_text(dashboard: Dashboard) -> None:
    state = dashboard.hub.state
    hostile = build_client(client_id=HOSTILE, name=SCRIPT_NAME, email="x@hostile.example")
    state.set_client(hostile)
    state.set_channel(
        build_channel(
            channel_id=HOSTILE_CHANNEL,
            client=hostile,
            phone_number="+4915200000666",
            phone_name=SCRIPT_NAME,
            hub_status="live",
            app_id="666",
        )
    )
    tab = await dashboard.open("/ui/")
    page = tab.page
    await expect(page.locator(".empty")).to_be_visible()

    # The card arrives through the live refresh, which swaps the region's HTML in place.
    await dashboard.post(webhook("channel_live", HOSTILE_CHANNEL, client_id=HOSTILE))
    card = page.locator(f'article.card[data-channel="{HOSTILE_CHANNEL}"]')
    await expect(card.locator(".badge")).to_have_text("live", timeout=LIVE)
    await expect(card.locator(".client")).to_have_text(SCRIPT_NAME)
    await expect(card.locator(".name")).to_have_text(SCRIPT_NAME)
    assert SCRIPT_NAME in await card.inner_text()
    await _only_our_script(dashboard, tab.page)

    await page.reload()  # and as the server renders the whole page
    await expect(card.locator(".client")).to_have_text(SCRIPT_NAME)
    await _only_our_script(dashboard, tab.page)
    await page.locator(f'article.card[data-channel="{HOSTILE_CHANNEL}"] a.details').click()
    await expect(page.locator("h1.phone")).to_contain_text("+4915200000666")
    await expect(page.locator("dl.facts")).to_contain_text(SCRIPT_NAME)
    await _only_our_script(dashboard, tab.page)
    assert tab.dialogs == []
    assert tab.page_errors == []


async def _only_our_script(dashboard: Dashboard, page: Page) -> None:
    """The page's one script is the dashboard's own: nothing from the data became a script."""
    scripts = await page.evaluate(
        "Array.from(document.querySelectorAll('script'), s => s.src || s.textContent)"
    )
    assert scripts == [f"{dashboard.url}/ui/static/live.js"]


async def test_the_pages_fit_a_phone_screen(dashboard: Dashboard) -> None:
    await dashboard.seed_estate()
    stored = await all_events(dashboard.app.services.sessions)
    [event_id] = [e.id for e in stored if e.event_type == "account_violation"]
    tab = await dashboard.open("/ui/", viewport=PHONE)
    page = tab.page
    await expect(page.locator("article.card")).to_have_count(len(ESTATE_STATUSES))

    for path in (
        "/ui/",
        f"/ui/numbers/{ACME_LIVE}",
        "/ui/events",
        f"/ui/events/{event_id}",
        "/ui/deliveries",
        "/ui/rules",
    ):
        await page.goto(path)
        await expect(page.locator("main")).to_be_visible()
        widths = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"{path} scrolls sideways at 390 px: {widths}"
