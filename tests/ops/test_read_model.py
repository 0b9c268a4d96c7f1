"""One read model: the CLI's `--json` and the admin API show the same items."""

from __future__ import annotations

import json
from typing import Any

from tests.ops.support import Sink, admin_get, channel_live, post_webhook, settle
from tests.support.app import RunningApp
from tests.support.cli import hub_receiver_async


async def cli_json(*args: str, database_url: str) -> Any:
    result = await hub_receiver_async(*args, "--json", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_the_cli_and_the_admin_api_list_channels_and_deliveries_alike(
    app: RunningApp, sink: Sink, database_url: str
) -> None:
    await post_webhook(app, channel_live())
    await sink.state.wait_for(1)
    await settle(app)

    channels = await cli_json("channels", "list", database_url=database_url)
    deliveries = await cli_json("deliveries", "list", database_url=database_url)
    channel = await cli_json("channels", "show", "kJ2mQ8CH", database_url=database_url)

    assert channels == (await admin_get(app, "/admin/channels"))["items"]
    assert deliveries == (await admin_get(app, "/admin/deliveries"))["items"]
    assert channel == await admin_get(app, "/admin/channels/kJ2mQ8CH")
    assert channel["client_name"]
    assert [e["event_type"] for e in channel["recent_events"]] == ["channel_live"]
    assert [d["event_type"] for d in deliveries] == ["channel_live"]
