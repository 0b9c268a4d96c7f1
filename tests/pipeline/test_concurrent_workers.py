"""Two arq workers on one PostgreSQL and one Redis, racing on the same channel."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from receiver.settings import Settings
from tests.pipeline.support import (
    ACME,
    ACME_DRAFT,
    all_events,
    handed_over,
    history,
    post,
    webhook,
)
from tests.support.app import run_worker_burst, running_app
from tests.support.fakes import Hub

MakeSettings = Callable[..., Settings]

QUIET_RULES = """
targets:
  ops: ""
rules:
  - name: team hears about status changes
    match: {status: {}}
    notify: [ops]
"""


async def test_two_workers_on_one_channel_record_each_status_change_once(
    pipeline_settings: MakeSettings,
    pg_url: str,
    pipeline_redis_url: str,
    hub: Hub,
    rules_dir: Callable[[str], Path],
) -> None:
    settings = pipeline_settings(
        database_url=pg_url, redis_url=pipeline_redis_url, rules_path=rules_dir(QUIET_RULES)
    )
    async with running_app(settings) as app:
        sessions = app.services.sessions
        await post(app, webhook("channel_created", ACME_DRAFT, client_id=ACME))
        await handed_over(app, events=1)
        await run_worker_burst(settings)
        assert await history(sessions, ACME_DRAFT) == [(None, "draft")]

        hub.state.update_channel(
            ACME_DRAFT, hub_status="live", integration={"app_id": "5001", "enabled": True}
        )
        hub.state.slow(0.05)  # every worker is mid-request at once
        kinds = ["channel_ready", "channel_running", "channel_live"] * 4
        for kind in kinds:
            await post(app, webhook(kind, ACME_DRAFT, client_id=ACME))
        await handed_over(app, events=1 + len(kinds))
        await asyncio.gather(run_worker_burst(settings), run_worker_burst(settings))

        events = await all_events(sessions)
        assert [(e.state, e.last_error) for e in events] == [("processed", None)] * len(events)
        changes = await history(sessions, ACME_DRAFT)
        assert changes == [(None, "draft"), ("draft", "live")]
        assert max(Counter(changes).values()) == 1
