"""A 10,000-channel reconciliation sweep against the fake Partner API, at PARTNER_API_RATE.

    uv run python -m bench.reconcile_sweep                    # PostgreSQL and SQLite, ~2 min
    uv run python -m bench.reconcile_sweep --db postgresql --channels 2000   # a smoke test

The fake Partner API (`receiver/dev/fake_hub.py`, holding `--channels` channels over
`--clients` clients) runs in a process of its own, so its memory and event loop are not
charged to the sweep; on SIGTERM it writes every request it answered with its arrival time
(`time.monotonic()`, one clock for every process on the machine). This process runs
`reconcile()` through `open_runtime` as `hub-receiver reconcile` does (the shared limit in
the database, the page size reconcile uses) twice: the first pass records one event per
channel and client, the second must record none. Then the recorded events are processed
(`process_event`, which stores the channels and clients) and a third, quiet pass runs over
the now unchanged estate: it must find nothing and write nothing, and its CPU time
(`time.process_time`, every thread of this process) is what a routine sweep costs; run
with a large `--rate` (e.g. 1000/s) so the shared limit is not what the pass waits on. Its
write statements are counted by table (the shared limit's `rate_slots` row is the one
expected: one reservation per page). While the first pass lists, a second
runtime (its own engine and Partner API client: another process as far as the limit can
tell) asks for one channel at `--enrich-rate` per second through `PartnerClient.get_channel`,
the call webhook enrichment makes (`receiver/pipeline/enrich.py`), and each call's wait from
asking to arriving at the fake is recorded. The same probe with no sweep running is the
reference.

Output: a summary on stdout and `bench/out/reconcile_sweep-<UTC time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.databases import flush_redis, fresh_pg, fresh_sqlite
from bench.processes import ROOT, Code
from receiver.dev.fake_hub import FakeHubState, create_fake_hub_app
from receiver.dev.sample_data import build_channel, build_client
from receiver.http.loopback import serve_app
from receiver.jobs.process import process_event
from receiver.partner.client import PartnerClient
from receiver.services import Services
from receiver.settings import Settings
from receiver.watch.reconcile import PAGE_SIZE, reconcile
from receiver.wiring import open_runtime

PARTNER_ID = "sweepPA"
API_KEY = "sweep-api-key"
DEFAULT_RATE = "5/s"  # PARTNER_API_RATE's default (receiver/settings.py)
OUT = ROOT / "bench" / "out"


def channel_id(n: int) -> str:
    return f"R{n:05d}CH"


def populated_hub(*, channels: int, clients: int) -> FakeHubState:
    """`channels` live channels spread evenly over `clients` clients."""
    state = FakeHubState(partner_id=PARTNER_ID)
    built = []
    for n in range(clients):
        client = build_client(client_id=f"R{n:04d}CL", name=f"Sweep {n}", email=f"c{n}@x.test")
        state.set_client(client)
        built.append(client)
    for n in range(channels):
        state.set_channel(
            build_channel(
                channel_id=channel_id(n),
                client=built[n % clients],
                phone_number=f"+49152{n:07d}",
                phone_name=f"Sweep {n}",
                hub_status="live",
                app_id=f"30{n:05d}",
            )
        )
    return state


# -- the fake, in its own process ---------------------------------------------------------------


async def _serve_hub(out: Path, *, channels: int, clients: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    state = populated_hub(channels=channels, clients=clients)
    async with serve_app(create_fake_hub_app(state, api_key=API_KEY)) as url:
        print(json.dumps({"url": url}), flush=True)
        await stop.wait()
    log = [{"path": r.path, "query": r.query, "at": r.at} for r in state.requests]
    await asyncio.to_thread(out.write_text, json.dumps(log))


@dataclass
class HubProcess:
    process: subprocess.Popen[str]
    url: str
    log: Path

    @classmethod
    def start(cls, *, channels: int, clients: int, log: Path) -> HubProcess:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.reconcile_sweep", "--serve-hub", str(log)),
                *("--channels", str(channels), "--clients", str(clients)),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        url = json.loads(process.stdout.readline())["url"]
        return cls(process=process, url=url, log=log)

    def stop(self) -> list[dict[str, Any]]:
        """Stop the fake (only this process, by its pid); return the requests it answered."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        requests: list[dict[str, Any]] = json.loads(self.log.read_text())
        return requests


# -- the enrichment probe --------------------------------------------------------------------


@dataclass
class Probe:
    """get_channel calls at a fixed rate; each one's start, keyed by the channel it asks for."""

    partner: PartnerClient
    rate: float
    first: int
    asked: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        tasks: list[asyncio.Task[None]] = []
        n = self.first
        while not stop.is_set():
            tasks.append(asyncio.create_task(self._ask(channel_id(n))))
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1 / self.rate)
        await asyncio.gather(*tasks)

    async def _ask(self, wanted: str) -> None:
        self.asked[wanted] = time.monotonic()
        await self.partner.get_channel(wanted)
        self.answered[wanted] = time.monotonic()


def probe_waits(probe: Probe, requests: list[dict[str, Any]]) -> list[float]:
    """Each probe call's wait from asking to arriving at the fake, in seconds."""
    arrived = {}
    for r in requests:
        filters = r["query"].get("filters")
        if filters:
            arrived[json.loads(filters).get("id")] = r["at"]
    return [
        arrived[c] - at for c, at in sorted(probe.asked.items(), key=lambda i: i[1]) if c in arrived
    ]


def spread(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[math.ceil(0.95 * len(ordered)) - 1], 1),  # nearest rank
        "max_ms": round(1000 * ordered[-1], 1),
    }


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most arrivals in any half-open window [t, t + window) starting at an arrival."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


# -- one database -----------------------------------------------------------------------------


def settings_for(
    database_url: str, hub_url: str, rate: str, redis_url: str | None = None
) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub_url,
        partner_api_rate=rate,
        reconcile_interval="off",
        log_level="WARNING",
    )


async def timed_pass(services: Services, *, page_size: int) -> dict[str, Any]:
    tracemalloc.reset_peak()
    started = time.monotonic()
    result = await reconcile(services, page_size=page_size)
    wall = time.monotonic() - started
    return {
        "started": started,
        "wall_s": round(wall, 2),
        "channels_listed": result.channels_listed,
        "clients_listed": result.clients_listed,
        "found": len(result.findings),
        "recorded": len(result.recorded),
        "recorded_ids": result.recorded,  # popped by measure
        "tracemalloc_peak_mb": round(tracemalloc.get_traced_memory()[1] / 2**20, 1),
        "maxrss_mb_after": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


async def process_found(services: Services, ids: list[int], *, concurrency: int = 8) -> float:
    """Process the recorded events (no Partner API call: reconcile events carry the answer)."""
    started = time.monotonic()
    todo = iter(ids)

    async def lane() -> None:
        for event_id in todo:
            await process_event({"services": services}, event_id)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return round(time.monotonic() - started, 1)


async def quiet_pass(services: Services, *, page_size: int) -> dict[str, Any]:
    """A pass over the unchanged estate: wall and CPU time, write statements by table."""
    writes: Counter[str] = Counter()

    def count(*args: Any) -> None:
        words = str(args[2]).split()
        if words and words[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            into = words[2] if words[0].upper() in {"INSERT", "DELETE"} else words[1]
            writes[f"{words[0].upper()} {into}"] += 1

    engine = services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    cpu = time.process_time()
    try:
        result = await timed_pass(services, page_size=page_size)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    result["cpu_s"] = round(time.process_time() - cpu, 2)
    result.pop("recorded_ids")
    result.pop("tracemalloc_peak_mb")  # not traced in this pass
    result["writes"] = dict(writes)
    return result


async def measure(
    database_url: str,
    hub_url: str,
    *,
    rate: str,
    page_size: int,
    enrich_rate: float,
    redis_url: str | None = None,
) -> dict[str, Any]:
    settings = settings_for(database_url, hub_url, rate, redis_url)
    async with (
        open_runtime(settings, role="cli") as sweeper,
        open_runtime(settings, role="cli") as enricher,
    ):
        assert enricher.partner is not None
        # Reference: the enrichment call with nothing else asking (8 calls).
        idle = Probe(enricher.partner, rate=enrich_rate, first=0)
        stop = asyncio.Event()
        running = asyncio.create_task(idle.run(stop))
        await asyncio.sleep(8 / enrich_rate - 0.1)
        stop.set()
        await running

        tracemalloc.start()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        busy = Probe(enricher.partner, rate=enrich_rate, first=100)
        stop = asyncio.Event()
        running = asyncio.create_task(busy.run(stop))
        first = await timed_pass(sweeper, page_size=page_size)
        stop.set()
        await running
        second = await timed_pass(sweeper, page_size=page_size)
        tracemalloc.stop()
        processed_s = await process_found(sweeper, first.pop("recorded_ids"))
        second.pop("recorded_ids")
        quiet = await quiet_pass(sweeper, page_size=page_size)
    quiet["processing_before_s"] = processed_s
    return {
        "idle_probe": idle,
        "busy_probe": busy,
        "first": first,
        "second": second,
        "quiet": quiet,
        "maxrss_mb_before": round(rss_before, 1),
    }


def summarise(
    name: str, measured: dict[str, Any], requests: list[dict[str, Any]], *, page_size: int
) -> dict[str, Any]:
    first, second = measured["first"], measured["second"]
    sweep = [r for r in requests if "offset" in r["query"]]
    second_start = second["started"]
    first_sweep = [r["at"] for r in sweep if r["at"] < second_start]
    quiet = measured["quiet"]
    second_sweep = [r["at"] for r in sweep if second_start <= r["at"] < quiet["started"]]
    quiet["requests"] = sum(1 for r in sweep if r["at"] >= quiet["started"])
    listing_end = max(first_sweep)
    busy: Probe = measured["busy_probe"]
    during = Probe(busy.partner, rate=busy.rate, first=0)
    during.asked = {c: at for c, at in busy.asked.items() if at < listing_end}
    everything = [r["at"] for r in requests]
    first["requests"] = len(first_sweep)
    second["requests"] = len(second_sweep)
    first["listing_s"] = round(listing_end - min(first_sweep), 2)
    return {
        "database": name,
        "page_size": page_size,
        "first_pass": first,
        "second_pass": second,
        "quiet_pass": measured["quiet"],
        "maxrss_mb_before": measured["maxrss_mb_before"],
        "requests_at_fake": len(requests),
        "max_requests_in_any_1s": max_in_window(everything),
        "max_requests_in_any_1s_during_first_sweep": max_in_window(
            [r["at"] for r in requests if r["at"] <= listing_end]
        ),
        "enrichment_wait_idle": spread(probe_waits(measured["idle_probe"], requests)),
        "max_requests_in_any_10s": max_in_window(everything, 10.0),
        "enrichment_wait_during_sweep": spread(probe_waits(during, requests)),
        # In the order asked, ms from the start of the first pass: where an outlier falls.
        "enrichment_waits_during_sweep_ms": [
            (round(1000 * (at - first["started"])), round(1000 * wait))
            for at, wait in zip(
                sorted(during.asked.values()), probe_waits(during, requests), strict=True
            )
        ],
    }


def run_one(
    name: str, database_url: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    hub = HubProcess.start(
        channels=args.channels, clients=args.clients, log=workdir / f"hub-{name}.json"
    )
    try:
        measured = asyncio.run(
            measure(
                database_url,
                hub.url,
                rate=args.rate,
                page_size=args.page_size,
                enrich_rate=args.enrich_rate,
                redis_url=args.redis,
            )
        )
    finally:
        requests = hub.stop()
    # Which tree's receiver ran the sweep (bench.run runs it for a baseline export too).
    return summarise(name, measured, requests, page_size=args.page_size) | {
        "receiver_root": str(Code.imported().root)
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile_sweep")
    parser.add_argument("--db", action="append", choices=["postgresql", "sqlite"])
    parser.add_argument("--channels", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--rate", default=DEFAULT_RATE, help="PARTNER_API_RATE")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    parser.add_argument("--enrich-rate", type=float, default=2.0, help="get_channel calls/s")
    parser.add_argument("--out", type=Path, help="also write the runs (JSON list) here")
    parser.add_argument(
        "--redis",
        help="REDIS_URL, as a deployment has it (the shared limit then lives in Redis); "
        "its database is flushed first",
    )
    parser.add_argument("--serve-hub", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_hub is not None:
        asyncio.run(_serve_hub(args.serve_hub, channels=args.channels, clients=args.clients))
        return
    logging.basicConfig(level=logging.WARNING)
    if args.redis:
        flush_redis(args.redis)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in args.db or ["postgresql", "sqlite"]:
            url = fresh_pg() if name == "postgresql" else fresh_sqlite(workdir, "sweep")
            results.append(run_one(name, url, args, workdir))
            print(json.dumps(results[-1], indent=2), flush=True)
    OUT.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record: dict[str, Any] = {
        "command": " ".join(["python -m bench.reconcile_sweep", *sys.argv[1:]]),
        "at": stamp,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    (OUT / f"reconcile_sweep-{stamp}.json").write_text(json.dumps(record | {"runs": results}))
    if args.out is not None:
        args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
