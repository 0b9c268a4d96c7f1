"""What the browser tests share: the dashboard running on loopback, logged-in tabs, an estate.

A test drives Debian's Chromium through Playwright against the real app (PostgreSQL, the
in-process runner, the fake Partner API and a json:// sink for the team's chat), posting
webhooks the way 360dialog does and watching what the pages show.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Dialog, Page, ViewportSize

from receiver.dev.mailbox import Mailbox
from receiver.dev.sample_data import build_channel, build_client
from tests.pipeline.support import (
    ACME,
    ACME_DRAFT,
    ACME_LIVE,
    ACME_PHONE,
    NORDWIND,
    NORDWIND_CHANNEL,
    post_authenticated,
    settle,
    webhook,
)
from tests.support.app import RunningApp
from tests.support.fakes import Hub, Sink

ADMIN_TOKEN = "ui-admin-Secr3t-Wq73Kz"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
# A live region refreshes every 5 s; this leaves room for a refresh or three on a busy machine.
LIVE = 20_000
# Playwright's own waits (clicks, navigation) on pages served from loopback.
ACTION = 15_000

LIFECYCLE_RULE = "team hears about every number lifecycle event"

# The sample estate beyond the fake hub's own three numbers (sample_data.default_state).
CAFE = "Lm6cF2CL"
CAFE_CHANNEL = "Rs4vW9CH"  # restricted by Meta
NORDWIND_LEAVING = "Pd2kX7CH"  # cancelled: pending deletion
ESTATE_STATUSES = {
    ACME_LIVE: "live",
    ACME_DRAFT: "draft",
    NORDWIND_CHANNEL: "sandbox",
    CAFE_CHANNEL: "restricted",
    NORDWIND_LEAVING: "pending_deletion",
}


@dataclass
class Tab:
    """One browser tab (in its own context: its own cookies), with what it reported."""

    page: Page
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return [text for text in self.console if "Content Security Policy" in text]

    async def log_in(self, *, then: str = "/ui/") -> None:
        """Open `then`, get sent to the login form, log in, and land back on `then`."""
        await self.page.goto(then)
        await self.page.wait_for_url("**/ui/login?next=*")
        await self.page.locator("#token").fill(ADMIN_TOKEN)
        await self.page.get_by_role("button", name="Log in").click()
        await self.page.wait_for_url(f"**{then}")


@dataclass
class Dashboard:
    """The app on loopback with its fakes, and the browser that looks at it."""

    app: RunningApp
    hub: Hub
    sink: Sink
    mailbox: Mailbox
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.app.url

    async def new_tab(self, *, viewport: ViewportSize = DESKTOP) -> Tab:
        """A tab in a fresh context (not logged in) that records console messages and dialogs."""
        context = await self.browser.new_context(base_url=self.url, viewport=viewport)
        context.set_default_timeout(ACTION)
        self.contexts.append(context)
        page = await context.new_page()
        tab = Tab(page=page)

        async def on_dialog(dialog: Dialog) -> None:
            tab.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        page.on("console", lambda message: tab.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: tab.page_errors.append(str(error)))
        page.on("dialog", on_dialog)
        return tab

    async def open(self, path: str = "/ui/", *, viewport: ViewportSize = DESKTOP) -> Tab:
        """A logged-in tab showing `path`."""
        tab = await self.new_tab(viewport=viewport)
        await tab.log_in(then=path)
        return tab

    async def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Exception):  # a context the browser already lost
                await context.close()

    async def post(self, body: Mapping[str, Any]) -> int:
        """Post an authenticated webhook; return the id of the event it stored."""
        answer = await post_authenticated(self.app, body)
        event_id: int = answer["event_id"]
        return event_id

    async def settle(self, *, events: int) -> None:
        """Wait until `events` events are processed and their first sends are done."""
        await settle(self.app, events=events, timeout=15.0)

    async def seed_estate(self) -> None:
        """Five numbers in five statuses for three clients, each announced by a webhook."""
        state = self.hub.state
        cafe = build_client(
            client_id=CAFE,
            name="Lena Sonnenschein",
            email="hallo@cafe-sonnenschein.example",
            organisation="Café Sonnenschein KG",
            language="de",
            created_at="2026-03-06T11:00:00Z",
        )
        state.set_client(cafe)
        state.set_channel(
            build_channel(
                channel_id=CAFE_CHANNEL,
                client=cafe,
                phone_number="+4917655501234",
                phone_name="Café Sonnenschein",
                hub_status="live",
                app_id="417230",
                waba_status="account_violation",
            )
        )
        state.set_channel(
            build_channel(
                channel_id=NORDWIND_LEAVING,
                client=state.clients[NORDWIND],
                phone_number="+31687654321",
                phone_name="Nordwind Tools Support",
                hub_status="pending_deletion",
                app_id="309123",
                terminated_at="2026-12-31T00:00:00Z",
            )
        )
        for event, channel_id, client_id, phone, extra in (
            ("channel_live", ACME_LIVE, ACME, ACME_PHONE, {}),
            ("channel_created", ACME_DRAFT, ACME, "+4915187654321", {}),
            ("channel_running", NORDWIND_CHANNEL, NORDWIND, "+31612345678", {}),
            ("account_violation", CAFE_CHANNEL, CAFE, "+4917655501234", {"violation_type": "SPAM"}),
            ("cancellation_request", NORDWIND_LEAVING, NORDWIND, "+31687654321", {}),
        ):
            setup_info = {"phone_number": phone}
            await self.post(
                webhook(event, channel_id, client_id=client_id, setup_info=setup_info, **extra)
            )
        await self.settle(events=5)


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name
