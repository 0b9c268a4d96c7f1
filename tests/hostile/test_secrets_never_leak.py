"""Secrets never appear in logs, errors, metrics, admin output or the CLI (PRODUCT.md).

One realistic run with a distinctive fake value in every secret setting, and everything
going wrong that produces error text: a target answering 500 until it is dead, a target
that is gone (404), an SMTP login the server refuses, a Partner API answering 500 and 401,
forged webhooks, malformed JSON, wrong admin tokens. Everything the service then shows or
writes is collected and searched for each secret: every log record (root logger at DEBUG)
and the JSON log lines `serve` would write, every HTTP answer, the CLI's outputs, every row
of every table, and what the notification targets received.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy import func, select, text

from receiver.db.tables import Base, Delivery, Event
from receiver.dev.fake_hub import FakeHubState, create_fake_hub_app
from receiver.dev.mailbox import Mailbox
from receiver.dev.sample_data import default_state
from receiver.dev.sink import SinkState, create_sink_app
from receiver.http.loopback import serve_app
from receiver.ingest.signature import sign
from receiver.settings import Settings
from tests.hostile.support import LogCapture, json_log_lines, rendered
from tests.support.app import RunningApp, running_app
from tests.support.cli import hub_receiver_async
from tests.support.fakes import PARTNER_ID
from tests.support.samples import sample

API_KEY = "SECRET-apikey-7Qx2Lp"
USERNAME = "partner-user"  # a user name is not a secret; its password is
PASSWORD = "SECRET-d360pw-9Rv4Kd"
WEBHOOK_SECRET = "SECRET-whsec-3Hn8Zt"
SHARED_SECRET = "SECRET-shared-5Wm1Qy"
ADMIN_TOKEN = "SECRET-admin-8Jc6Fu"
MAIL_PASSWORD = "SECRET-mailpw-2Bd7Xs"
OPS_TOKEN = "SECRET-opstok-4Gk9Ve"
OPS_HEADER = "SECRET-opshdr-0Pz8Mq"
FAILING_TOKEN = "SECRET-failtok-6Lp3Nw"
GONE_TOKEN = "SECRET-gonetok-1Tr5Yh"
SECRETS = {
    "D360_API_KEY": API_KEY,
    "D360_PASSWORD": PASSWORD,
    "D360_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "WEBHOOK_SHARED_SECRET": SHARED_SECRET,
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "CLIENT_EMAIL_URL password": MAIL_PASSWORD,
    "ops target token": OPS_TOKEN,
    "ops target header": OPS_HEADER,
    "failing target token": FAILING_TOKEN,
    "dead target token": GONE_TOKEN,
}
AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}
JSON = {"content-type": "application/json"}

RULES = """\
targets:
  ops: "${HR_OPS_URL}"
  failing: "${HR_FAILING_URL}"
  gone: "${HR_GONE_URL}"
rules:
  - name: team hears everything
    match: {event: "*"}
    notify: [ops, failing, gone]
  - name: client hears their number is live
    match: {event: channel_live}
    notify: [client]
"""


def needles(name: str, secret: str) -> dict[str, str]:
    """The secret as it could leak: whole, cut short, its unique tail, encoded, in basic auth."""
    tail = secret.rsplit("-", 1)[1]
    return {
        name: secret,
        f"{name} without its last 3 characters": secret[:-3],
        f"{name}'s unique part": tail,
        f"{name} percent-encoded": quote(secret, safe=""),
        f"{name} in basic auth": base64.b64encode(f"user:{secret}".encode()).decode()[:-4],
        f"{name} as base64": base64.b64encode(secret.encode()).decode().rstrip("="),
    }


@dataclass
class Evidence:
    """Everything the run produced that a person or a program could read."""

    pieces: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, content: str | bytes) -> None:
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        self.pieces.append((where, content))

    @property
    def size(self) -> int:
        return sum(len(content.encode()) for _, content in self.pieces)

    def hits(self, extra: Mapping[str, str]) -> list[str]:
        found = []
        search = {**{k: v for n, s in SECRETS.items() for k, v in needles(n, s).items()}, **extra}
        for where, content in self.pieces:
            for what, needle in search.items():
                if needle in content:
                    at = content.index(needle)
                    found.append(f"{what} in {where}: ...{content[max(0, at - 80) : at + 80]}...")
        return found


@dataclass
class Targets:
    ops: SinkState
    failing: SinkState
    gone: SinkState
    urls: dict[str, str]


@contextlib.asynccontextmanager
async def targets() -> AsyncIterator[Targets]:
    """Three json:// sinks: one that answers, one failing with 500, one gone (404)."""
    states = SinkState(), SinkState(), SinkState()
    states[1].always_fail(500)
    states[2].always_fail(404)
    async with contextlib.AsyncExitStack() as stack:
        bases = [await stack.enter_async_context(serve_app(create_sink_app(s))) for s in states]
        hosts = [base.removeprefix("http://") for base in bases]
        urls = {
            "HR_OPS_URL": f"json://user:{OPS_TOKEN}@{hosts[0]}/hook?+X-Api-Token={OPS_HEADER}",
            "HR_FAILING_URL": f"json://user:{FAILING_TOKEN}@{hosts[1]}/hook",
            "HR_GONE_URL": f"json://user:{GONE_TOKEN}@{hosts[2]}/gone",
        }
        try:
            yield Targets(ops=states[0], failing=states[1], gone=states[2], urls=urls)
        finally:
            for state in states:
                state.recover()


async def wait_idle(app: RunningApp, timeout: float = 25.0) -> None:
    """Until no event waits and no delivery is due, sending or waiting for a retry."""
    busy = ("pending", "sending", "failed")
    async with asyncio.timeout(timeout):
        while True:
            await app.drain(2.0)
            async with app.services.sessions() as session:
                waiting = await session.scalar(
                    select(func.count()).select_from(Event).where(Event.state == "received")
                )
                due = await session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.state.in_(busy))
                )
            if not waiting and not due:
                return
            await asyncio.sleep(0.05)


def body_of(name: str, **changes: Any) -> bytes:
    document: dict[str, Any] = orjson.loads(sample(name))
    document.update(changes)
    return orjson.dumps(document)


async def scenario(app: RunningApp, hub: FakeHubState, evidence: Evidence) -> None:
    """Webhooks good and bad, a callback, failing lookups; every answer kept as evidence."""

    async def keep(where: str, method: str, path: str, **kwargs: Any) -> Any:
        response = await app.client.request(method, path, **kwargs)
        assert response.status_code < 500, (where, response.status_code, response.text)
        evidence.add(f"{where} ({response.status_code}) headers", repr(response.headers))
        evidence.add(f"{where} ({response.status_code})", response.text)
        return response

    async def signed_post(where: str, body: bytes) -> Any:
        headers = {**JSON, "x-360dialog-signature": sign(body, WEBHOOK_SECRET.encode())}
        return await keep(where, "POST", "/webhooks/partner", content=body, headers=headers)

    live = body_of("partner_webhook.channel_live.json")
    await signed_post("channel_live", live)
    await wait_idle(app)
    violation = body_of("partner_webhook.account_violation.json")
    await keep(
        "violation, shared secret",
        "POST",
        "/webhooks/partner",
        content=violation,
        headers={**JSON, "x-webhook-token": f"Bearer {SHARED_SECRET}"},
    )
    # Forged and broken requests.
    forged = {**JSON, "x-360dialog-signature": sign(live + b" ", WEBHOOK_SECRET.encode())}
    await keep("forged", "POST", "/webhooks/partner", content=live + b" ", headers=forged)
    near = {**JSON, "x-webhook-token": SHARED_SECRET[:-1] + "X"}
    await keep("wrong shared secret", "POST", "/webhooks/partner", content=live, headers=near)
    await signed_post("malformed", b'{"event": "channel_live", "data": {"id": "kJ2mQ8CH"')
    await keep("wrong type", "POST", "/webhooks/partner", content=live, headers={})
    # The Partner API fails: 500s until the wait is over, then a 401 for another event.
    hub.fail_next(50, status=500)
    created = body_of("partner_webhook.client_created.json")
    created_signed = {**JSON, "x-360dialog-signature": sign(created, WEBHOOK_SECRET.encode())}
    await keep(
        "client_created", "POST", "/webhooks/partner", content=created, headers=created_signed
    )
    await wait_idle(app)
    while hub.take_failure() is not None:
        pass
    hub.fail_next(3, status=401)
    channel = body_of(
        "partner_webhook.channel_created.json", id="f00dfeed-0000-4000-8000-000000000001"
    )
    channel_signed = {**JSON, "x-360dialog-signature": sign(channel, WEBHOOK_SECRET.encode())}
    await keep(
        "channel_created", "POST", "/webhooks/partner", content=channel, headers=channel_signed
    )
    await keep("callback", "GET", "/callbacks/permission?client=Vb7xR2CL&channels=[kJ2mQ8CH]")
    await keep("callback, bad", "GET", "/callbacks/permission?client=Vb7xR2CL&channels=[%00]")
    await wait_idle(app)
    while hub.take_failure() is not None:
        pass

    # Every admin and operations answer.
    for where, token in (("admin, no token", None), ("admin, wrong token", ADMIN_TOKEN[:-1])):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        await keep(where, "GET", "/admin/events", headers=headers)
    events = (await keep("events", "GET", "/admin/events", headers=AUTH)).json()["items"]
    deliveries = (await keep("deliveries", "GET", "/admin/deliveries", headers=AUTH)).json()
    assert events and deliveries["items"]
    for event in events:
        await keep(f"event {event['id']}", "GET", f"/admin/events/{event['id']}", headers=AUTH)
        await keep(
            f"replay {event['id']}",
            "POST",
            f"/admin/events/{event['id']}/replay",
            params={"dry_run": "true"},
            headers=AUTH,
        )
    for delivery in deliveries["items"]:
        path = f"/admin/deliveries/{delivery['id']}"
        await keep(f"delivery {delivery['id']}", "GET", path, headers=AUTH)
    dead = [d for d in deliveries["items"] if d["state"] == "dead"]
    assert dead, deliveries
    await keep("retry", "POST", f"/admin/deliveries/{dead[0]['id']}/retry", headers=AUTH)
    await keep("channels", "GET", "/admin/channels", headers=AUTH)
    await keep("channel", "GET", "/admin/channels/kJ2mQ8CH", headers=AUTH)
    await keep("rules", "GET", "/admin/rules", headers=AUTH)
    await keep("reload", "POST", "/admin/rules/reload", headers=AUTH)
    await keep("bad filter", "GET", "/admin/deliveries", params={"since": "x"}, headers=AUTH)
    await keep("metrics", "GET", "/metrics")
    await keep("readyz", "GET", "/readyz")
    await keep("healthz", "GET", "/healthz")
    await wait_idle(app)


async def table_dump(app: RunningApp) -> str:
    """Every row of every table, as text."""
    lines = []
    async with app.services.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                lines.append(f"{table.name}: {tuple(row)!r}")
        version = await conn.execute(text("SELECT * FROM alembic_version"))
        lines += [repr(tuple(row)) for row in version]
    return "\n".join(lines)


async def test_no_secret_appears_in_any_log_answer_table_or_cli_output(
    database_url: str,
    make_settings: Callable[..., Settings],
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    with LogCapture.installed(quiet=False) as logs:
        await run_and_scan(
            partner_auth="api_key",
            database_url=database_url,
            make_settings=make_settings,
            mailbox=mailbox,
            tmp_path=tmp_path,
            logs=logs,
        )


async def test_no_secret_leaks_with_partner_api_bearer_tokens_either(
    pg_url: str,
    make_settings: Callable[..., Settings],
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    """D360_USERNAME / D360_PASSWORD: the password and every issued token stay hidden."""
    with LogCapture.installed(quiet=False) as logs:
        await run_and_scan(
            partner_auth="bearer",
            database_url=pg_url,
            make_settings=make_settings,
            mailbox=mailbox,
            tmp_path=tmp_path,
            logs=logs,
        )


async def run_and_scan(
    *,
    partner_auth: str,
    database_url: str,
    make_settings: Callable[..., Settings],
    mailbox: Mailbox,
    tmp_path: Path,
    logs: LogCapture,
) -> None:
    evidence = Evidence()
    rules_path = tmp_path / "rules"
    rules_path.mkdir()
    (rules_path / "rules.yaml").write_text(RULES)
    hub = default_state(PARTNER_ID)
    hub_app = (
        create_fake_hub_app(hub, api_key=API_KEY)
        if partner_auth == "api_key"
        else create_fake_hub_app(hub, username=USERNAME, password=PASSWORD)
    )
    client_email_url = (
        f"mailto://bot:{MAIL_PASSWORD}@{mailbox.host}:{mailbox.port}?from=hub@example.com"
    )
    with json_log_lines("DEBUG") as json_lines:
        async with serve_app(hub_app) as hub_url, targets() as sinks:
            partner: dict[str, Any] = (
                {"d360_api_key": API_KEY}
                if partner_auth == "api_key"
                else {"d360_username": USERNAME, "d360_password": PASSWORD}
            )
            settings = make_settings(
                database_url=database_url,
                rules_path=rules_path,
                rules_env=sinks.urls,
                d360_partner_id=PARTNER_ID,
                d360_api_base=hub_url,
                d360_webhook_secret=WEBHOOK_SECRET,
                webhook_shared_secret=SHARED_SECRET,
                admin_token=ADMIN_TOKEN,
                client_email_url=client_email_url,
                delivery_retry_schedule=[0.2, 0.3],
                enrich_max_wait=1.0,
                d360_timeout=2.0,
                log_level="DEBUG",
                **partner,
            )
            async with running_app(settings) as app:
                await scenario(app, hub, evidence)
                # The pipeline really met every failure it was meant to.
                async with app.services.sessions() as session:
                    rows = list(await session.scalars(select(Delivery)))
                    events = list(await session.scalars(select(Event)))
                states = {(row.target_name, row.state) for row in rows}
                assert ("ops", "sent") in states, states
                assert ("failing", "dead") in states or ("failing", "pending") in states, states
                assert ("gone", "dead") in states, states
                assert any(row.last_error for row in rows if row.target_name == "client"), states
                assert {e.enrichment for e in events} >= {"enriched", "not_enriched"}, events
                for row in rows:
                    evidence.add(
                        f"delivery {row.id} columns",
                        f"{row.target_display} | {row.last_error} | {row.render_error}",
                    )
                evidence.add("database", await table_dump(app))
                env = cli_environment(settings, sinks.urls, partner_auth=partner_auth)
                commands = (
                    ("deliveries", "list", "--json"),
                    ("deliveries", "list"),
                    ("events", "list", "--json"),
                    ("channels", "list", "--json"),
                    ("rules", "check"),
                    ("replay", "--type", "channel_live", "--dry-run", "--json"),
                )
                results = await asyncio.gather(*(hub_receiver_async(*c, env=env) for c in commands))
                for command, result in zip(commands, results, strict=True):
                    assert result.returncode == 0, (command, result.stdout, result.stderr)
                    evidence.add(f"`{' '.join(command)}` stdout", result.stdout)
                    evidence.add(f"`{' '.join(command)}` stderr", result.stderr)
            for name, sink in (("ops", sinks.ops), ("failing", sinks.failing)):
                assert sink.received, name
                for entry in sink.received:
                    evidence.add(f"what the {name} target received", json.dumps(entry.as_json()))
    for record in logs.records:
        evidence.add(f"log record {record.name}", rendered(record))
    evidence.add("JSON log lines", json_lines.getvalue())
    assert len(logs.records) > 50
    assert json_lines.getvalue().count("\n") > 50

    tokens = {f"issued bearer token {i}": t for i, t in enumerate(hub.issued_tokens)}
    if partner_auth == "bearer":
        assert tokens, "the bearer variant never fetched a token"
    hits = evidence.hits(tokens)
    print(
        f"\nsecrets scan ({partner_auth}, {database_url.split(':', 1)[0]}): "
        f"{evidence.size:,} bytes in {len(evidence.pieces)} pieces, "
        f"{len(SECRETS) + len(tokens)} secrets, {len(hits)} hits"
    )
    assert hits == [], "\n".join(hits)


def cli_environment(
    settings: Settings, target_urls: Mapping[str, str], *, partner_auth: str
) -> dict[str, str]:
    """The same configuration as the app's, as the environment `hub-receiver` reads."""
    env = {
        "DATABASE_URL": settings.database_url,
        "RULES_PATH": str(settings.rules_path),
        "D360_PARTNER_ID": PARTNER_ID,
        "D360_API_BASE": settings.d360_api_base,
        "D360_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WEBHOOK_SHARED_SECRET": SHARED_SECRET,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "CLIENT_EMAIL_URL": settings.client_email_url.get_secret_value()
        if settings.client_email_url
        else "",
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": "json",
        **target_urls,
    }
    if partner_auth == "api_key":
        env["D360_API_KEY"] = API_KEY
    else:
        env |= {"D360_USERNAME": USERNAME, "D360_PASSWORD": PASSWORD}
    return env


def test_the_secret_scan_finds_a_planted_secret() -> None:
    """The scan itself works: a secret planted in any form is found."""
    for name, secret in SECRETS.items():
        for form in needles(name, secret).values():
            evidence = Evidence()
            evidence.add("planted", f"xx {form} yy")
            assert evidence.hits({}), form
