"""Nobody can make hub-receiver email-bomb a client (issue 10 §2.1).

An unauthenticated webhook never reaches the `client` target (in processing, re-enrichment
and replay alike); the shipped rules tell a client about a change, not a repeated event;
and at most CLIENT_MAX_PER_HOUR client emails per client go out in any hour: the rest are
held, the team is told once, and a held email is sent when someone retries it by id.
Real databases, the fake Partner API, a json:// sink and an SMTP mailbox.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from receiver.db.engine import create_engine
from receiver.dev.mailbox import Mailbox
from receiver.ops.replay import replay
from receiver.pipeline.route import CAP_RULE, NOT_AUTHENTICATED, client_trust, take_client_slot
from receiver.settings import Settings
from tests.pipeline.support import (
    ACME,
    ACME_EMAIL,
    ACME_LIVE,
    WEBHOOK_TOKEN,
    all_deliveries,
    post,
    post_authenticated,
    settle,
    webhook,
)
from tests.support.app import running_app
from tests.support.cli import hub_receiver_async as run_cli_async
from tests.support.fakes import Sink
from tests.support.waiting import eventually

MakeSettings = Callable[..., Settings]

CLIENT_LIVE_RULE = "client hears their number is live"

EVERY_LIVE_EVENT_RULES = """
targets:
  ops: "{ops}"
  alerts: "{alerts}"
rules:
  - name: client hears every channel_live
    match: {{event: channel_live}}
    notify: [client]
"""


def channel_live() -> dict[str, object]:
    return webhook("channel_live", ACME_LIVE, client_id=ACME)


# --- who may reach a client (pure) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "verification", "claim", "expected"),
    [
        ("channel_live", "signature", None, (True, None)),
        ("channel_live", "shared_secret", None, (True, None)),
        ("channel_live", "none", None, (False, NOT_AUTHENTICATED)),
        ("an_event_from_the_future", "none", None, (False, NOT_AUTHENTICATED)),
        ("permission_granted", "none", "confirmed", (True, None)),
        ("permission_revoked", "none", "rejected", (False, "no")),
        ("permission_granted", "none", "unconfirmed", (False, "no")),
        ("permission_granted", "signature", "unconfirmed", (False, "no")),
    ],
)
def test_only_authenticated_webhooks_and_confirmed_claims_may_reach_a_client(
    event_type: str, verification: str, claim: str | None, expected: tuple[bool, str | None]
) -> None:
    result = client_trust(
        event_type=event_type, verification=verification, claim=claim, claim_reason="no"
    )
    assert result == expected


# --- (a) unauthenticated webhooks ------------------------------------------------------------


async def test_an_unauthenticated_channel_live_tells_the_team_but_never_the_client(
    pipeline_settings: MakeSettings, database_url: str, sink: Sink, mailbox: Mailbox
) -> None:
    # No webhook secret configured (a fresh `serve`): the Partner API confirms the channel
    # and owner, but anyone could have posted the event.
    async with running_app(pipeline_settings(database_url=database_url)) as app:
        await post(app, channel_live())
        await settle(app, events=1)
        await sink.state.wait_for(1)
        rows = await all_deliveries(app.services.sessions)

    [to_client] = [d for d in rows if d.target_name == "client"]
    assert to_client.rule_name == CLIENT_LIVE_RULE
    assert (to_client.state, to_client.last_error) == ("skipped", NOT_AUTHENTICATED)
    assert to_client.attempts == 0
    assert [d.state for d in rows if d.target_name == "ops"] == ["sent"]
    assert mailbox.messages == []


async def test_a_forced_replay_of_an_unauthenticated_event_does_not_reach_the_client(
    pipeline_settings: MakeSettings, database_url: str, mailbox: Mailbox
) -> None:
    async with running_app(pipeline_settings(database_url=database_url)) as app:
        answer = await post(app, channel_live())
        await settle(app, events=1)

        report = await replay(
            app.services, event_ids=[answer["event_id"]], dry_run=False, force=True
        )
        await app.drain()
        rows = await all_deliveries(app.services.sessions)

    [event] = report.events
    [planned] = [p for p in event.now if p.target == "client"]
    assert (planned.state, planned.reason) == ("skipped", NOT_AUTHENTICATED)
    client_rows = [d for d in rows if d.target_name == "client"]
    assert [(d.replay_round, d.state) for d in client_rows] == [(0, "skipped"), (1, "skipped")]
    assert mailbox.messages == []


# --- (b) a change, not a repeated event ------------------------------------------------------


async def test_a_repeated_channel_live_emails_the_client_once(
    pipeline_settings: MakeSettings, database_url: str, mailbox: Mailbox
) -> None:
    settings = pipeline_settings(database_url=database_url, webhook_shared_secret=[WEBHOOK_TOKEN])
    async with running_app(settings) as app:
        for count in (1, 2, 3):
            await post_authenticated(app, channel_live())
            await settle(app, events=count)
        rows = await all_deliveries(app.services.sessions)

    [mail] = await mailbox.wait_for(1)
    assert mail.to == (ACME_EMAIL,)
    assert [(d.rule_name, d.state) for d in rows if d.target_name == "client"] == [
        (CLIENT_LIVE_RULE, "sent")
    ]
    assert len(mailbox.messages) == 1


# --- (c) the per-client cap ------------------------------------------------------------------


async def test_client_emails_over_the_hourly_cap_are_held_the_team_is_told_once_and_retry_sends(
    pipeline_settings: MakeSettings,
    database_url: str,
    sink: Sink,
    mailbox: Mailbox,
    rules_dir: Callable[[str], Path],
) -> None:
    folder = rules_dir(
        EVERY_LIVE_EVENT_RULES.format(ops=sink.json_url("/ops"), alerts=sink.json_url("/alerts"))
    )
    settings = pipeline_settings(
        database_url=database_url,
        rules_path=folder,
        webhook_shared_secret=[WEBHOOK_TOKEN],
        client_max_per_hour=2,
    )
    env = {"DATABASE_URL": database_url}
    async with running_app(settings) as app:
        sessions = app.services.sessions
        for count in range(1, 6):
            await post_authenticated(app, channel_live())
            await settle(app, events=count)
        await mailbox.wait_for(2)
        [notice] = await sink.state.wait_for(1)
        rows = await all_deliveries(sessions)

        to_client = [d for d in rows if d.target_name == "client"]
        assert [d.state for d in to_client] == ["sent", "sent", "held", "held", "held"]
        held = [d for d in to_client if d.state == "held"]
        assert all(d.last_error and "CLIENT_MAX_PER_HOUR=2" in d.last_error for d in held)
        assert all(d.attempts == 0 and d.client_id == ACME for d in held)
        # Told once per client per window, through the rules' `alerts` target, as a row.
        [cap_row] = [d for d in rows if d.rule_name == CAP_RULE]
        assert (cap_row.target_name, cap_row.state) == ("alerts", "sent")
        assert cap_row.event_id == held[0].event_id
        assert notice.path == "/alerts"
        assert notice.body["title"].startswith("Client emails held:")
        assert ACME in notice.body["title"]
        assert "2 emails in the last hour" in notice.body["message"]
        assert "deliveries retry" in notice.body["message"]

        listed = await run_cli_async("deliveries", "list", "--state", "held", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert sorted(d["id"] for d in json.loads(listed.stdout)) == [d.id for d in held]

        # A person decides: a held email retried by id is sent (by the running sweep).
        retried = await run_cli_async("deliveries", "retry", str(held[0].id), env=env)
        assert retried.returncode == 0, retried.stderr
        await mailbox.wait_for(3, timeout=10.0)

        async def released() -> list[str]:
            rows = await all_deliveries(sessions)
            states = [d.state for d in rows if d.target_name == "client"]
            return states if states.count("sent") == 3 else []

        assert await eventually(released) == ["sent", "sent", "sent", "held", "held"]
        # Releasing them all at once is not offered: that is the flood the cap stopped.
        bulk = await run_cli_async("deliveries", "retry", "--all-dead", env=env)
        assert bulk.returncode == 1
        await settle(app, events=5)

    assert len(mailbox.messages) == 3
    assert [r.path for r in sink.state.received] == ["/alerts"]


async def test_two_transactions_cannot_both_take_a_clients_last_slot(pg_url: str) -> None:
    engine = create_engine(pg_url)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    now = datetime.now(UTC)
    try:
        async with sessions() as first, sessions() as second:
            async with first.begin():
                assert await take_client_slot(first, client_id=ACME, cap=1, now=now)
                # The second waits on the first's slot row, then finds it taken.
                racing = asyncio.create_task(
                    _take_in_transaction(second, client_id=ACME, cap=1, now=now)
                )
                await asyncio.sleep(0.3)
                assert not racing.done()
            assert await racing is False
            async with second.begin():
                assert await take_client_slot(second, client_id="someone-else", cap=1, now=now)
    finally:
        await engine.dispose()


async def _take_in_transaction(
    session: AsyncSession, *, client_id: str, cap: int, now: datetime
) -> bool:
    async with session.begin():
        return await take_client_slot(session, client_id=client_id, cap=cap, now=now)
