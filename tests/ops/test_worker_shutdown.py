"""A deploy stops workers with SIGTERM: that is not a crash.

Real `serve` and `worker` processes on PostgreSQL and a private Redis (the machine's shared
one is flushed by other test runs), a JSON sink as the team's chat. The worker must let a
running send finish, record it, and exit 0 without a traceback; with WORKER_METRICS_PORT it
serves its own counters.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from receiver.dev.sink import SinkState, create_sink_app
from receiver.http.loopback import free_port, serve_app
from tests.faults.harness import FAST_ENV, HEADERS, SHARED_SECRET, probe_body, write_rules
from tests.support.processes import ServiceProcess, process_env
from tests.support.redis_server import private_redis
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)


@dataclass
class Deployment:
    env: dict[str, str]
    sink: SinkState
    folder: Path
    dsn: str

    def worker(self, **env: str) -> ServiceProcess:
        return ServiceProcess("worker", "worker", {**self.env, **env}, log_dir=self.folder)

    def web(self) -> ServiceProcess:
        return ServiceProcess("web", "serve", self.env, log_dir=self.folder, port=free_port())

    async def delivery_states(self) -> list[str]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return [row["state"] for row in await conn.fetch("SELECT state FROM deliveries")]
        finally:
            await conn.close()


@pytest.fixture
async def deployment(tmp_path: Path, pg_url: str) -> AsyncIterator[Deployment]:
    sink = SinkState()
    async with private_redis() as redis, serve_app(create_sink_app(sink)) as sink_url:
        target = "json://" + sink_url.removeprefix("http://") + "/ops"
        rules = write_rules(tmp_path, {"ops": target}, notify=["ops"])
        env = process_env(
            {
                **FAST_ENV,
                "DATABASE_URL": pg_url,
                "REDIS_URL": redis.url,
                "RULES_PATH": str(rules),
                "WEBHOOK_SHARED_SECRET": SHARED_SECRET,
            }
        )
        try:
            yield Deployment(
                env=env, sink=sink, folder=tmp_path, dsn=pg_url.replace("+asyncpg", "")
            )
        finally:
            sink.recover()


async def post_event(web: ServiceProcess) -> None:
    key = uuid.uuid4().hex
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(
            f"{web.url}/webhooks/partner", content=probe_body(key, 1), headers=HEADERS
        )
    assert response.status_code == 200, response.text


async def test_sigterm_lets_the_running_send_finish_and_the_worker_exits_0(
    deployment: Deployment,
) -> None:
    deployment.sink.hang(2.0)  # the send is in flight when the signal arrives
    web, worker = deployment.web(), deployment.worker()
    await web.start()
    await worker.start()
    try:
        await post_event(web)
        await deployment.sink.wait_for(1, timeout=30)

        await worker.terminate(timeout=20)

        assert worker.exits == [0], worker.log_tail()
        log = worker.log_text()
        assert "Traceback" not in log
        assert "CancelledError" not in log
        assert await deployment.delivery_states() == ["sent"]
        assert len(deployment.sink.received) == 1
    finally:
        await worker.stop()
        await web.stop()


async def test_a_worker_serves_its_own_metrics_on_worker_metrics_port(
    deployment: Deployment,
) -> None:
    port = free_port()
    web, worker = deployment.web(), deployment.worker(WORKER_METRICS_PORT=str(port))
    await web.start()
    await worker.start()
    try:
        await post_event(web)
        await deployment.sink.wait_for(1, timeout=30)
        sent = 'hub_receiver_deliveries_total{outcome="sent",target_kind="json"} 1.0'

        async def scraped() -> bool:
            # Counted once the send is recorded, a moment after the sink has the message.
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(f"http://127.0.0.1:{port}/metrics")
            assert response.status_code == 200
            return sent in response.text

        # Counted in the worker, where the job ran: the web process never sees it.
        await eventually(scraped, timeout=15, what="the worker's sent counter")

        await worker.terminate(timeout=20)
        assert worker.exits == [0], worker.log_tail()
        # The metrics server leaves SIGTERM to the worker: it is handled once, not re-raised.
        assert worker.log_text().count("shutdown on SIGTERM ◆") == 1
    finally:
        await worker.stop()
        await web.stop()
