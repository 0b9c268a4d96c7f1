"""What the ops tests share: rules pointing at the sink, signed webhooks, scraped metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from receiver.db.tables import Delivery, Event
from receiver.dev.sink import SinkState
from receiver.ingest.signature import sign
from tests.support.app import RunningApp
from tests.support.samples import sample

# Distinctive fake secrets: none of them may appear in any admin or metrics answer.
TARGET_SECRET = "tgt-Secr3t-Zq81xLw"
API_KEY = "apikey-Secr3t-Kd72Vn"
ADMIN_TOKEN = "admin-Secr3t-Hq55Pb"
WEBHOOK_SECRET = "whsec-Secr3t-Mv19Tr"
MAIL_SECRET = "mail-Secr3t-Ry40Xe"
SECRETS = (TARGET_SECRET, API_KEY, ADMIN_TOKEN, WEBHOOK_SECRET, MAIL_SECRET)

AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}
WEBHOOK = "/webhooks/partner"
LIVE_RULE = "team hears a number went live"
ALSO_RULE = "duty phone hears a number went live"


@dataclass
class Sink:
    state: SinkState
    port: int

    def target(self, path: str) -> str:
        return f"json://hook:{TARGET_SECRET}@127.0.0.1:{self.port}/{path}"

    def paths(self) -> list[str]:
        return [entry.path for entry in self.state.received]


@dataclass
class RulesFolder:
    path: Path
    sink: Sink

    def write(self, *, also: bool = False, broken: bool = False) -> None:
        """The base rule (channel_live -> ops); `also` adds a second rule to `duty`."""
        text = (
            "targets:\n"
            f'  ops: "{self.sink.target("ops")}"\n'
            f'  duty: "{self.sink.target("duty")}"\n'
            "rules:\n"
            f"  - name: {LIVE_RULE}\n"
            "    match: {event: channel_live}\n"
            "    notify: [ops]\n"
        )
        if also:
            text += (
                f"  - name: {ALSO_RULE}\n    match: {{event: channel_live}}\n    notify: [duty]\n"
            )
        if broken:
            text += "  - name: broken\n    match: {evnt: channel_live}\n    notify: [nowhere]\n"
        (self.path / "rules.yaml").write_text(text)


def channel_live(n: int = 1) -> bytes:
    """A distinct channel_live webhook (its own top-level id) for the same channel."""
    document: dict[str, Any] = orjson.loads(sample("partner_webhook.channel_live.json"))
    document["id"] = f"{document['id'][:-4]}{n:04d}"
    return orjson.dumps(document)


async def post_webhook(app: RunningApp, body: bytes, *, secret: str = WEBHOOK_SECRET) -> int:
    response = await app.client.post(
        WEBHOOK,
        content=body,
        headers={
            "content-type": "application/json",
            "x-360dialog-signature": sign(body, secret.encode()),
        },
    )
    assert response.status_code in (200, 401), response.text
    if response.status_code != 200:
        return 0
    event_id: int = response.json()["event_id"]
    return event_id


async def settle(app: RunningApp, timeout: float = 10.0) -> None:
    """Wait until no event waits for processing and no delivery is due or being sent."""
    sessions = app.services.sessions

    async def busy() -> int:
        async with sessions() as session:
            events = await session.scalar(
                select(func.count()).select_from(Event).where(Event.state == "received")
            )
            deliveries = await session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.state.in_(("pending", "sending")))
            )
        return int(events or 0) + int(deliveries or 0)

    async with asyncio.timeout(timeout):
        while True:
            await app.drain()
            if await busy() == 0:
                await app.drain()
                return
            await asyncio.sleep(0.02)


async def scrape(app: RunningApp) -> str:
    response = await app.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in scraped text; 0 when the series does not exist yet."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return float(item.value)
    return 0.0


async def admin_get(app: RunningApp, path: str, **params: Any) -> Any:
    response = await app.client.get(path, params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


async def admin_post(app: RunningApp, path: str, **params: Any) -> Any:
    response = await app.client.post(path, params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()
