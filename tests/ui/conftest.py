"""Fixtures of the browser tests: Chromium (one per module), the app and its fakes on loopback.

One browser per module keeps the run short, so a module's tests and every async fixture they
use run on the module's event loop (`pytestmark = pytest.mark.asyncio(loop_scope="module")`
in each test module): Playwright's connection belongs to the loop that started it, and the
app, the fake hub and the sink must be served by the loop the test awaits on. The `hub` and
`sink` fixtures below are tests/conftest.py's, on that loop.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from receiver.dev.fake_hub import create_fake_hub_app
from receiver.dev.mailbox import Mailbox
from receiver.dev.sample_data import default_state
from receiver.dev.sink import SinkState, create_sink_app
from receiver.http.loopback import serve_app
from receiver.settings import Settings
from tests.conftest import truncate_all
from tests.pipeline.support import SHIPPED_RULES, WEBHOOK_TOKEN
from tests.support.app import running_app
from tests.support.fakes import API_KEY, PARTNER_ID, Hub, Sink
from tests.ui.support import ADMIN_TOKEN, Dashboard

# Debian's package; Playwright's own browser download is not used (TEST_CHROMIUM overrides).
CHROMIUM = Path(os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium"))
# No sandbox: the tests run as root in containers, where Chromium's sandbox cannot start; the
# browser only ever loads our own pages from loopback. /dev/shm is small in containers.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]


def require_chromium() -> Path:
    """Chromium's path; skip without it, or fail when CI is set (as servers.require does)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = f"Chromium is not installed at {CHROMIUM}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: a missing browser is a failure)")
    pytest.skip(f"{message}; install it (apt-get install chromium) or set TEST_CHROMIUM")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def hub() -> AsyncIterator[Hub]:
    state = default_state(PARTNER_ID)
    async with serve_app(create_fake_hub_app(state, api_key=API_KEY)) as url:
        yield Hub(state=state, url=url)


@pytest_asyncio.fixture(loop_scope="module")
async def sink() -> AsyncIterator[Sink]:
    state = SinkState()
    async with serve_app(create_sink_app(state)) as base_url:
        try:
            yield Sink(state=state, base_url=base_url)
        finally:
            state.recover()


@pytest_asyncio.fixture(loop_scope="module")
async def ui_database_url(postgres_database: str) -> str:
    """PostgreSQL, as in production, emptied for each test."""
    await truncate_all(postgres_database)
    return postgres_database


@pytest.fixture
def ui_settings(
    make_settings: Callable[..., Settings],
    ui_database_url: str,
    *,
    hub: Hub,
    sink: Sink,
    mailbox: Mailbox,
    tmp_path: Path,
) -> Settings:
    """The shipped rules, the team's chat on the sink, clients' emails to the mailbox, the
    admin token set; jobs run in-process (no Redis).

    The rules are copied under a long folder name, as a real install's path can be: the rules
    page shows each file's path whole, and it must still fit a phone screen.
    """
    rules = tmp_path / "srv-hub-receiver-production-deployment-configuration" / "routing_rules"
    shutil.copytree(SHIPPED_RULES, rules)
    return make_settings(
        database_url=ui_database_url,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
        rules_path=rules,
        rules_env={"OPS_NOTIFY_URL": sink.json_url("/ops")},
        client_email_url=mailbox.apprise_url(),
        webhook_shared_secret=[WEBHOOK_TOKEN],
        admin_token=ADMIN_TOKEN,
        delivery_retry_schedule=[0.2, 0.4],
        enrich_max_wait=1.0,
        sweep_interval=0.3,
        # The balance watcher would poll the fake hub in the background and might announce
        # a balance mid-test: the tests count what the sink received.
        balance_interval="off",
    )


@pytest_asyncio.fixture(loop_scope="module")
async def dashboard(
    browser: Browser, ui_settings: Settings, hub: Hub, sink: Sink, mailbox: Mailbox
) -> AsyncIterator[Dashboard]:
    async with running_app(ui_settings) as app:
        board = Dashboard(app=app, hub=hub, sink=sink, mailbox=mailbox, browser=browser)
        try:
            yield board
        finally:
            await board.close()  # before the app stops: no refresh may hit a closed port
