"""The fault-test stack: private PostgreSQL and Redis, real `serve`/`worker` processes, a
fake Partner API, JSON sinks (and an SMTP mailbox) as notification targets, a load generator
and the queries that check the promises.

Everything the processes talk to runs on loopback; the sinks and the fake hub run in the
test's own event loop, so the test can inject failures into them while the processes run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import yaml
from redis.asyncio import Redis

from receiver.dev.fake_hub import FakeHubState, create_fake_hub_app
from receiver.dev.sample_data import default_state
from receiver.dev.sink import SinkState, create_sink_app
from receiver.http.loopback import free_port, serve_app
from tests.support.pg_server import PostgresServer, private_postgres
from tests.support.processes import ServiceProcess, process_env, run_migrations
from tests.support.redis_server import RedisServer, private_redis
from tests.support.waiting import eventually

SHARED_SECRET = "fault-test-shared-secret"
PARTNER_ID = "FaUlTpArTnEr"
HUB_API_KEY = "fault-test-api-key"
PROBE_EVENT = "fault_probe"
TERMINAL_DELIVERY_STATES = ("sent", "dead", "skipped", "throttled")
FAST_ENV: dict[str, str] = {
    "SWEEP_INTERVAL": "1s",
    "REQUEUE_AFTER": "5s",
    "DELIVERY_RETRY_SCHEDULE": "1s,2s,3s",
    "DELIVERY_TIMEOUT": "5s",
    # A first attempt is written claimed with its event's processing; if that commit's answer
    # is lost (the database killed mid-commit), nobody sends the row until its claim is
    # stale: SEND_LEASE (90 s in production, where REQUEUE_AFTER is 120 s). Shorter here, as
    # REQUEUE_AFTER is, and still well past DELIVERY_TIMEOUT.
    "SEND_LEASE": "20s",
    "ENRICH_MAX_WAIT": "3s",
    "D360_TIMEOUT": "2",
    # The fault tests count their own webhooks end to end; the watchers would add events of
    # their own (a reconcile pass over the fake hub at start-up). tests/watch covers them.
    "RECONCILE_INTERVAL": "off",
    "BALANCE_INTERVAL": "off",
}


def record_figures(test: str, **figures: Any) -> None:
    """Print a test's figures (shown with -s / on failure) and append them to FAULT_RESULTS."""
    line = json.dumps({"test": test, **figures}, sort_keys=True, default=str)
    print(f"FAULT-FIGURES {line}")
    target = os.environ.get("FAULT_RESULTS")
    if target:
        with Path(target).open("a") as out:
            out.write(line + "\n")


# --- waiting -----------------------------------------------------------------------------------


# --- the stack --------------------------------------------------------------------------------


@dataclass
class Sink:
    name: str
    state: SinkState
    base_url: str

    @property
    def apprise_url(self) -> str:
        return "json://" + self.base_url.removeprefix("http://") + f"/{self.name}"

    def ok_receipts(self) -> Counter[int]:
        """How many times each event's notification reached this target (answered 2xx)."""
        return Counter(
            int(entry.body["event_id"])
            for entry in self.state.received
            if entry.status < 300 and isinstance(entry.body, dict) and "event_id" in entry.body
        )

    def all_receipts(self) -> Counter[int]:
        return Counter(
            int(entry.body["event_id"])
            for entry in self.state.received
            if isinstance(entry.body, dict) and "event_id" in entry.body
        )


@dataclass
class Stack:
    folder: Path
    pg: PostgresServer
    redis: RedisServer
    database: str
    hub: FakeHubState
    hub_url: str
    sinks: dict[str, Sink]
    env: dict[str, str]
    webs: list[ServiceProcess] = field(default_factory=list)
    workers: list[ServiceProcess] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return self.pg.url(self.database)

    @property
    def dsn(self) -> str:
        return self.pg.dsn(self.database)

    def web_urls(self) -> list[str]:
        return [web.url for web in self.webs]

    async def add_web(self, *, start: bool = True) -> ServiceProcess:
        web = ServiceProcess(
            f"web{len(self.webs) + 1}",
            "serve",
            self.env,
            log_dir=self.folder,
            port=free_port(),
        )
        self.webs.append(web)
        if start:
            await web.start()
        return web

    async def add_worker(
        self, *, start: bool = True, env: Mapping[str, str] | None = None
    ) -> ServiceProcess:
        worker = ServiceProcess(
            f"worker{len(self.workers) + 1}",
            "worker",
            {**self.env, **(env or {})},
            log_dir=self.folder,
        )
        self.workers.append(worker)
        if start:
            await worker.start()
        return worker

    # -- looking at the database ---------------------------------------------------------------

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn, timeout=5)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows
        finally:
            await conn.close()

    async def events(self) -> dict[str, asyncpg.Record]:
        """Stored events by dedup key."""
        rows = await self.query(
            "SELECT id, dedup_key, state, enrichment, attempts, last_error FROM events"
        )
        return {row["dedup_key"]: row for row in rows}

    async def deliveries(self) -> list[asyncpg.Record]:
        return await self.query(
            "SELECT id, event_id, target_name, state, attempts, last_error, claimed_at, sent_at "
            "FROM deliveries ORDER BY id"
        )

    async def state_counts(self, table: str) -> Counter[str]:
        rows = await self.query(f"SELECT state, count(*) AS n FROM {table} GROUP BY state")  # noqa: S608
        return Counter({row["state"]: int(row["n"]) for row in rows})

    async def queue_depth(self) -> int:
        client = Redis.from_url(self.redis.url)
        try:
            return int(await client.zcard("arq:queue"))
        finally:
            await client.aclose()

    async def all_processed(self, keys: Iterable[str]) -> bool:
        events = await self.events()
        return all(key in events and events[key]["state"] == "processed" for key in keys)

    async def wait_processed(self, keys: Iterable[str], *, timeout: float, what: str) -> None:
        """Wait until every event in `keys` is processed; fail listing the ones that are not."""
        wanted = set(keys)
        try:
            await eventually(
                lambda: self.all_processed(wanted), timeout=timeout, what=what, interval=0.5
            )
        except AssertionError as exc:
            rows = await self.query(
                "SELECT id, state, attempts, enqueued_at, lease_until, next_attempt_at, "
                "now() AS db_now, last_error FROM events WHERE state <> 'processed' "
                "ORDER BY id LIMIT 20"
            )
            detail = "\n".join(str(dict(row)) for row in rows)
            raise AssertionError(f"{exc}\nunprocessed events:\n{detail}") from None

    async def wait_deliveries_settled(self, *, timeout: float, what: str) -> None:
        """Wait until no delivery is pending/sending/failed; fail listing the ones that are."""
        try:
            await eventually(self.deliveries_settled, timeout=timeout, what=what, interval=0.5)
        except AssertionError as exc:
            rows = await self.query(
                "SELECT id, event_id, target_name, state, attempts, claimed_at, enqueued_at, "
                "next_attempt_at, now() AS db_now, last_error FROM deliveries "
                "WHERE state NOT IN ('sent', 'dead', 'skipped', 'throttled') ORDER BY id LIMIT 20"
            )
            detail = "\n".join(str(dict(row)) for row in rows)
            raise AssertionError(f"{exc}\nunsettled deliveries:\n{detail}") from None

    async def deliveries_settled(self) -> bool:
        counts = await self.state_counts("deliveries")
        return sum(counts.values()) > 0 and all(
            state in TERMINAL_DELIVERY_STATES for state in counts
        )

    def describe(self) -> str:
        """Log tails of every process, for assertion messages."""
        parts = []
        for process in [*self.webs, *self.workers]:
            parts.append(f"--- {process.name} ({process.log_path}) ---\n{process.log_tail(1500)}")
        return "\n".join(parts)


def write_rules(folder: Path, targets: Mapping[str, str], *, notify: Sequence[str]) -> Path:
    rules_dir = folder / "rules"
    rules_dir.mkdir()
    document = {
        "targets": dict(targets),
        "rules": [{"name": "everything", "match": {"event": "*"}, "notify": list(notify)}],
    }
    (rules_dir / "faults.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return rules_dir


@contextlib.asynccontextmanager
async def fault_stack(
    folder: Path,
    *,
    sinks: Sequence[str] = ("ops",),
    extra_targets: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    partner_api: bool = True,
) -> AsyncIterator[Stack]:
    """Start PostgreSQL, Redis, the fake hub and the sinks; migrate; yield (no processes yet).

    Every target in `sinks` gets its own JSON sink server; the one rule notifies all targets.
    On exit every process is stopped (SIGTERM, then SIGKILL) and the servers torn down.
    """
    # tests/conftest.py sets PYTHONASYNCIODEBUG="0", which (being non-empty) turns asyncio's
    # debug mode on: far too slow for a load test. Off for this loop and the processes.
    asyncio.get_running_loop().set_debug(False)
    hub = default_state(PARTNER_ID)
    sink_states = {name: SinkState() for name in sinks}
    async with contextlib.AsyncExitStack() as stack:
        pg = await stack.enter_async_context(private_postgres())
        redis = await stack.enter_async_context(private_redis())
        hub_url = await stack.enter_async_context(
            serve_app(create_fake_hub_app(hub, api_key=HUB_API_KEY))
        )
        running_sinks: dict[str, Sink] = {}
        for name, state in sink_states.items():
            base = await stack.enter_async_context(serve_app(create_sink_app(state)))
            running_sinks[name] = Sink(name, state, base)
        database = "hub_faults"
        await pg.create_database(database)
        targets = {name: sink.apprise_url for name, sink in running_sinks.items()}
        targets.update(extra_targets or {})
        rules_dir = write_rules(folder, targets, notify=list(targets))
        values: dict[str, Any] = {
            **FAST_ENV,
            "DATABASE_URL": pg.url(database),
            "REDIS_URL": redis.url,
            "RULES_PATH": str(rules_dir),
            "WEBHOOK_SHARED_SECRET": SHARED_SECRET,
        }
        if partner_api:
            values.update(
                D360_PARTNER_ID=PARTNER_ID, D360_API_KEY=HUB_API_KEY, D360_API_BASE=hub_url
            )
        values.update(env or {})
        process_environment = process_env(values)
        await asyncio.to_thread(
            run_migrations, process_environment, log_path=folder / "migrate.log"
        )
        result = Stack(
            folder=folder,
            pg=pg,
            redis=redis,
            database=database,
            hub=hub,
            hub_url=hub_url,
            sinks=running_sinks,
            env=process_environment,
        )
        try:
            yield result
        finally:
            for state in sink_states.values():
                state.recover()  # release hanging requests so the sink servers can stop
            await asyncio.gather(
                *(process.stop() for process in [*result.webs, *result.workers]),
                return_exceptions=True,
            )


# --- load -----------------------------------------------------------------------------------


def probe_body(key: str, seq: int) -> bytes:
    """An event no rule knows by name (routed by `event: "*"`), unique by its top-level id."""
    return orjson.dumps({"id": key, "event": PROBE_EVENT, "data": {"seq": seq, "probe": key}})


def channel_event_body(key: str, channel_id: str, event: str = "channel_live") -> bytes:
    """A channel event the worker must enrich through the Partner API."""
    return orjson.dumps(
        {"id": key, "event": event, "data": {"id": channel_id, "status": "running"}}
    )


def dedup_key(key: str, event: str = PROBE_EVENT) -> str:
    return f"wh:id:{event}:{key}"


HEADERS = {"content-type": "application/json", "x-webhook-token": SHARED_SECRET}


@dataclass
class LoadReport:
    """Every post made: its key and what came back (HTTP status, or the error's name)."""

    outcomes: dict[str, list[int | str]] = field(default_factory=dict)
    acked_bodies: dict[str, str] = field(default_factory=dict)  # key -> answer's status field

    def record(self, key: str, outcome: int | str) -> None:
        self.outcomes.setdefault(key, []).append(outcome)

    @property
    def acked(self) -> set[str]:
        """Keys answered 2xx at least once."""
        return {
            key
            for key, results in self.outcomes.items()
            if any(isinstance(r, int) and 200 <= r < 300 for r in results)
        }

    def tally(self) -> Counter[str]:
        return Counter(str(r) for results in self.outcomes.values() for r in results)

    @property
    def sent(self) -> int:
        return sum(len(results) for results in self.outcomes.values())


async def post_one(
    client: httpx.AsyncClient, url: str, key: str, body: bytes, report: LoadReport
) -> int | str:
    try:
        response = await client.post(f"{url}/webhooks/partner", content=body, headers=HEADERS)
    except httpx.HTTPError as exc:
        report.record(key, type(exc).__name__)
        return type(exc).__name__
    report.record(key, response.status_code)
    if response.status_code < 300:
        with contextlib.suppress(ValueError):
            report.acked_bodies[key] = str(response.json().get("status"))
    return response.status_code


async def steady_load(
    urls: Callable[[], Sequence[str]],
    stop: asyncio.Event,
    report: LoadReport,
    *,
    prefix: str | None = None,
    concurrency: int = 8,
    pause: float = 0.01,
) -> None:
    """Post unique probe events from `concurrency` senders, round-robin, until `stop` is set."""
    prefix = prefix or uuid.uuid4().hex[:8]
    counter = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0), limits=limits) as client:

        async def sender() -> None:
            while not stop.is_set():
                seq = next(counter)
                key = f"{prefix}-{seq}"
                targets = urls()
                outcome = await post_one(
                    client, targets[seq % len(targets)], key, probe_body(key, seq), report
                )
                # Back off a little when the service is down, as a real sender would.
                await asyncio.sleep(pause if isinstance(outcome, int) else 0.1)

        await asyncio.gather(*(sender() for _ in range(concurrency)))


async def post_all(
    urls: Sequence[str],
    items: Sequence[tuple[str, bytes]],
    report: LoadReport,
    *,
    concurrency: int = 16,
) -> None:
    """Post each (key, body) once, round-robin over `urls`, `concurrency` at a time."""
    queue: asyncio.Queue[tuple[int, str, bytes]] = asyncio.Queue()
    for index, (key, body) in enumerate(items):
        queue.put_nowait((index, key, body))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), limits=limits) as client:

        async def sender() -> None:
            while not queue.empty():
                index, key, body = queue.get_nowait()
                await post_one(client, urls[index % len(urls)], key, body, report)

        await asyncio.gather(*(sender() for _ in range(concurrency)))
