"""`hub-receiver dev`: the service plus a fake Partner API, an HTTP sink and an SMTP mailbox.

Everything runs in one process on loopback so anyone can try the whole pipeline without
360dialog credentials: post with `hub-receiver send-test channel_live`, then look at the
sink (`GET <sink>/_received`) and at the mailbox lines printed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from receiver.app import create_app
from receiver.db.migrate import upgrade_async
from receiver.dev.fake_hub import FakeHubState, create_fake_hub_app
from receiver.dev.loopback import serve_app
from receiver.dev.mailbox import Mailbox, run_mailbox
from receiver.dev.sample_data import default_state
from receiver.dev.sink import SinkState, create_sink_app
from receiver.settings import Settings, load_settings

log = logging.getLogger("receiver.dev")

DEV_PARTNER_ID = "devPA"
DEV_API_KEY = "dev-api-key"


async def _watch_mailbox(mailbox: Mailbox) -> None:
    seen = 0
    while True:
        await asyncio.sleep(0.2)
        for message in mailbox.messages[seen:]:
            log.info("mailbox received", extra={"to": message.to, "subject": message.subject})
        seen = len(mailbox.messages)


async def run_dev(
    base: Settings,
    *,
    host: str,
    port: int,
    with_sinks: bool,
    sink_port: int,
    smtp_port: int,
    hub_port: int,
) -> None:
    hub_state: FakeHubState = default_state(DEV_PARTNER_ID)
    hub_app = create_fake_hub_app(hub_state, api_key=DEV_API_KEY)
    async with contextlib.AsyncExitStack() as stack:
        hub_url = await stack.enter_async_context(serve_app(hub_app, port=hub_port))
        overrides: dict[str, object] = {
            "d360_partner_id": DEV_PARTNER_ID,
            "d360_api_key": DEV_API_KEY,
            "d360_api_base": hub_url,
            "host": host,
            "port": port,
        }
        if with_sinks:
            sink_state = SinkState()
            sink_url = await stack.enter_async_context(
                serve_app(create_sink_app(sink_state), port=sink_port)
            )
            mailbox = stack.enter_context(run_mailbox(smtp_port))
            overrides["client_email_url"] = mailbox.apprise_url(sender="hub-receiver@localhost")
            # The shipped rules (routing_rules/default.yaml) send ops messages to ${OPS_NOTIFY_URL}.
            overrides["rules_env"] = {
                "OPS_NOTIFY_URL": sink_url.replace("http://", "json://", 1) + "/ops",
                **base.rules_env,
            }
            watcher = asyncio.create_task(_watch_mailbox(mailbox))
            stack.callback(watcher.cancel)
            log.info(
                "dev sink and mailbox up",
                extra={"sink": f"{sink_url}/_received", "smtp_port": mailbox.port},
            )
        settings = base.with_overrides(**overrides)
        await upgrade_async(settings.database_url)
        log.info("dev fake Partner API up", extra={"url": hub_url, "partner_id": DEV_PARTNER_ID})
        config = uvicorn.Config(
            create_app(settings), host=host, port=port, log_config=None, access_log=False
        )
        await uvicorn.Server(config).serve()


def dev_settings() -> Settings:
    """Dev runs on the same database as every other command (DATABASE_URL, else SQLite)."""
    return load_settings()
