"""Fixtures of the pipeline tests: the fake Partner API, a json:// sink, an SMTP mailbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from receiver.dev.mailbox import Mailbox
from receiver.settings import Settings
from tests.pipeline.support import SHIPPED_RULES
from tests.support.fakes import API_KEY, PARTNER_ID, Hub, Sink
from tests.support.servers import REDIS_HOST, REDIS_PORT, redis_test_db, require

# Not `redis_url`'s database (tests/conftest.py): arq's queue key is global within a
# database, and the other suites flush theirs and run workers there.
PIPELINE_REDIS_DB = redis_test_db(1)


@pytest.fixture
async def pipeline_redis_url() -> AsyncIterator[str]:
    require(REDIS_HOST, REDIS_PORT, "Redis")
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{PIPELINE_REDIS_DB}"
    client = Redis.from_url(url)
    await client.flushdb()
    try:
        yield url
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
def rules_dir(tmp_path: Path) -> Callable[[str], Path]:
    """Write a rules folder holding one YAML file; return the folder."""

    def write(text: str) -> Path:
        folder = tmp_path / "rules"
        folder.mkdir(exist_ok=True)
        (folder / "rules.yaml").write_text(text)
        return folder

    return write


@pytest.fixture
def pipeline_settings(
    make_settings: Callable[..., Settings], hub: Hub, sink: Sink, mailbox: Mailbox
) -> Callable[..., Settings]:
    """Settings wired to the fake hub, the sink (OPS_NOTIFY_URL) and the mailbox."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "d360_partner_id": PARTNER_ID,
            "d360_api_key": API_KEY,
            "d360_api_base": hub.url,
            "client_email_url": mailbox.apprise_url(),
            "rules_path": SHIPPED_RULES,
            "rules_env": {"OPS_NOTIFY_URL": sink.json_url("/ops")},
            "delivery_retry_schedule": [0.2, 0.4],
            "enrich_max_wait": 1.0,
            "sweep_interval": 0.3,
        }
        values.update(overrides)
        return make_settings(**values)

    return make
