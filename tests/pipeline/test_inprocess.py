"""The embedded default: SQLite and the in-process job runner, no Redis."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from receiver.dev.mailbox import Mailbox
from receiver.jobs.inprocess import InProcessQueue
from receiver.settings import Settings
from tests.pipeline.support import (
    ACME,
    ACME_EMAIL,
    ACME_LIVE,
    ACME_PHONE,
    WEBHOOK_TOKEN,
    all_deliveries,
    history,
    post_authenticated,
    settle,
    webhook,
)
from tests.support.app import running_app
from tests.support.fakes import Sink


async def test_channel_live_is_notified_end_to_end_on_sqlite_with_the_in_process_runner(
    pipeline_settings: Callable[..., Settings],
    sqlite_template: Path,
    tmp_path: Path,
    sink: Sink,
    mailbox: Mailbox,
) -> None:
    database = tmp_path / "hub.db"
    shutil.copy(sqlite_template, database)
    settings = pipeline_settings(
        database_url=f"sqlite+aiosqlite:///{database}", webhook_shared_secret=[WEBHOOK_TOKEN]
    )
    async with running_app(settings) as app:
        assert isinstance(app.services.queue, InProcessQueue)
        await post_authenticated(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
        await settle(app, events=1)

        [chat] = await sink.state.wait_for(1)
        [mail] = await mailbox.wait_for(1)
        rows = await all_deliveries(app.services.sessions)
        assert await history(app.services.sessions, ACME_LIVE) == [(None, "live")]

    assert chat.body["title"] == f"Number is live: {ACME_PHONE} (Jana Beispiel)"
    assert "Status: new → live" in chat.body["message"]
    assert mail.to == (ACME_EMAIL,)
    assert mail.subject == f"{ACME_PHONE} is live"
    assert sorted((d.target_name, d.state, d.attempts) for d in rows) == [
        ("client", "sent", 1),
        ("ops", "sent", 1),
    ]
