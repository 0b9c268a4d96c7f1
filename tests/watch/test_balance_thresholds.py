"""Per-client balance thresholds: a rule's `event.balance: {lt: N}` is its own crossing."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import select

from receiver.db.tables import Event
from receiver.dev.sample_data import ACME_CLIENT_ID, NORDWIND_CLIENT_ID
from receiver.pipeline.subject import preview_subject, routing_subject, webhook_body
from receiver.routing.matcher import match_rules
from receiver.routing.rules_state import load
from receiver.routing.ruleset import RuleSet
from receiver.settings import Settings
from receiver.watch.balance import balance_pass
from tests.pipeline.support import SHIPPED_RULES
from tests.support.fakes import Hub
from tests.watch.test_balance import balance_services

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DEFAULT_LOW = "team hears when a client's balance runs low"
DEFAULT_RECOVERED = "team hears when a client's balance recovers"
STRICT = "acme: below 50"
QUIET = "acme: below 5"
STRICT_RECOVERED = "acme: back to 50"

OWN_RULES = f"""\
rules:
  - name: "{STRICT}"
    match: {{event: balance_low, where: {{client.id: {ACME_CLIENT_ID}, event.balance: {{lt: 50}}}}}}
    notify: [ops]
  - name: "{QUIET}"
    match: {{event: balance_low, where: {{client.id: {ACME_CLIENT_ID}, event.balance: {{lt: 5}}}}}}
    notify: [ops]
  - name: "{STRICT_RECOVERED}"
    match: {{event: balance_recovered, where: {{client.id: {ACME_CLIENT_ID}, event.threshold: 50}}}}
    notify: [ops]
"""


def rules_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(SHIPPED_RULES, folder)
    (folder / "zz_balance.yaml").write_text(OWN_RULES)
    return folder


async def fired(services: object, rules: RuleSet, since: int) -> list[tuple[str | None, str]]:
    """(client, rule) for each balance event after id `since`, as the pipeline matches them."""
    async with services.sessions() as session:  # type: ignore[attr-defined]
        events = (
            await session.scalars(
                select(Event).where(Event.source == "balance", Event.id > since).order_by(Event.id)
            )
        ).all()
    out: list[tuple[str | None, str]] = []
    for event in events:
        body = webhook_body(event)
        subject = routing_subject(
            event,
            body=body,
            channel=None,
            client={"id": event.client_id},
            status_change=None,
            claim=None,
            now=NOW,
        )
        out += [(event.client_id, m.rule) for m in match_rules(rules, subject)]
    return out


async def last_id(services: object) -> int:
    async with services.sessions() as session:  # type: ignore[attr-defined]
        ids = (await session.scalars(select(Event.id).order_by(Event.id.desc()).limit(1))).all()
    return ids[0] if ids else 0


async def test_each_rule_threshold_is_told_once_per_crossing_and_recovers_on_its_own(
    database_url: str, hub: Hub, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = rules_folder(tmp_path)
    async with balance_services(
        make_settings, database_url, hub, rules_path=folder, balance_clients="all"
    ) as (services, clock):
        rules = load(services.settings, now=NOW).rules
        hub.state.set_balance(NORDWIND_CLIENT_ID, balance=100)
        await balance_pass(services, force=True, sleep=clock.sleep)  # Acme 42.50: below 50
        for acme, nordwind, expected in [
            (60, 100, [(ACME_CLIENT_ID, STRICT_RECOVERED)]),  # its own recovery rule only
            (45, 45, [(ACME_CLIENT_ID, STRICT)]),  # Nordwind crosses 50 too: no rule of its
            (44, 40, []),  # still below 50: nothing new
            (8, 40, [(ACME_CLIENT_ID, DEFAULT_LOW)]),  # crosses 10: the default rule only
            (8, 40, []),  # repeated poll
            (4, 40, [(ACME_CLIENT_ID, QUIET)]),  # 8 -> 4: the quieter rule
            (4, 40, []),
            (12, 40, [(ACME_CLIENT_ID, DEFAULT_RECOVERED)]),  # back above 5 and 10
            (55, 40, [(ACME_CLIENT_ID, STRICT_RECOVERED)]),
            (
                2,
                40,
                [(ACME_CLIENT_ID, DEFAULT_LOW), (ACME_CLIENT_ID, STRICT), (ACME_CLIENT_ID, QUIET)],
            ),
        ]:
            hub.state.set_balance(ACME_CLIENT_ID, balance=acme)
            hub.state.set_balance(NORDWIND_CLIENT_ID, balance=nordwind)
            since = await last_id(services)
            await balance_pass(services, force=True, sleep=clock.sleep)
            got = await fired(services, rules, since)
            assert sorted(got) == sorted(expected), (acme, nordwind)


async def test_rules_test_sees_a_watch_event_as_production_does(
    database_url: str, hub: Hub, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with balance_services(
        make_settings, database_url, hub, rules_path=rules_folder(tmp_path)
    ) as (services, clock):
        await balance_pass(services, force=True, sleep=clock.sleep)
        hub.state.set_balance(ACME_CLIENT_ID, balance=5)
        await balance_pass(services, force=True, sleep=clock.sleep)
        async with services.sessions() as session:
            events = (
                await session.scalars(
                    select(Event).where(Event.event_type == "balance_low").order_by(Event.id)
                )
            ).all()
        stored = next(e for e in events if orjson.loads(e.raw_body or "{}")["threshold"] == 10)
        production = routing_subject(
            stored,
            body=webhook_body(stored),
            channel=None,
            client=None,
            status_change=None,
            claim=None,
            now=NOW,
        )
        preview = preview_subject(stored.raw_body or "", now=NOW)
        assert preview.event == production.event
        assert preview.event["balance"] == 5
        assert preview.event["source"] == "balance"
