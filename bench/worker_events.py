"""Events per second of one worker, end to end: stored webhook -> enriched -> routed -> sent.

`hub-receiver serve` (PostgreSQL + Redis) takes N unique events while no worker runs; once
they are stored and queued, one `hub-receiver worker` starts. Every event matches one rule
sending it to the loopback `json://` sink, so each event is one delivery; the rate is the
sink's arrivals over the time between its first and last one, (n - 1) / span as in fan-out.
Also reported: the worker's own CPU time per event (all its threads, from "runtime open" to
the last delivery recorded, a quarter second of polling included). With `workers` > 1 that
many workers drain the same queue (the scale-out figure; CPU is their sum).

PARTNER_API_RATE is off for this part: the fake Partner API is on loopback, and the default
limit (5/s, shared through the database) would cap enrichment, one call per event, at 5
events/s: the figure would be the limit's, not the worker's. The reconcile pass is off too,
so the worker sends nothing but the posted events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import databases, processes
from bench.events import webhook_body
from bench.ingest import SECRET, write_rules
from bench.pipeline import SINK_RULES, pipeline_env, queue_depth, upstreams, wait_for

SETTINGS_NOTE = (
    "events: PARTNER_API_RATE=off (the loopback fake would otherwise cap enrichment, one "
    "Partner API call per event, at the default 5/s) and RECONCILE_INTERVAL=off"
)


async def _post_all(url: str, count: int) -> set[str]:
    """POST `count` unique events, 64 at a time; the correlation ids the receiver gave them."""
    tag = f"ev{time.time_ns()}"
    accepted: set[str] = set()
    gate = asyncio.Semaphore(64)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def one(seq: int) -> None:
            _type, body = webhook_body(seq, random.Random(seq), tag=tag)
            async with gate:
                response = await client.post(
                    url,
                    content=body,
                    headers={"content-type": "application/json", "x-webhook-token": SECRET},
                )
            response.raise_for_status()
            accepted.add(response.json()["correlation_id"])

        await asyncio.gather(*(one(n) for n in range(count)))
    return accepted


async def _count(url: str, query: str) -> int:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


def _wait_queued(url: str, count: int, *, timeout: float = 120.0) -> dict[str, int]:
    """Until every event is stored and its job is in the queue (the web relay's hand-off)."""
    deadline = time.monotonic() + timeout
    stored = depth = 0
    while time.monotonic() < deadline:
        stored = asyncio.run(_count(url, "SELECT count(*) FROM events"))
        depth = asyncio.run(queue_depth())
        if stored >= count and depth >= count:
            break
        time.sleep(0.2)
    return {"stored": stored, "queued": depth}


def _wait_sent(url: str, count: int, *, timeout: float) -> int:
    """Until `count` deliveries are sent, or nothing moved for 15 s, or `timeout`."""
    deadline = time.monotonic() + timeout
    sent, last, moved = 0, -1, time.monotonic()
    query = "SELECT count(*) FROM deliveries WHERE state = 'sent'"
    while time.monotonic() < deadline and sent < count:
        time.sleep(0.25)
        sent = asyncio.run(_count(url, query))
        if sent != last:
            last, moved = sent, time.monotonic()
        elif time.monotonic() - moved > 15:
            break
    return sent


def run_events(
    work: Path,
    *,
    log_dir: Path,
    events: int,
    log_level: str = "INFO",
    code: processes.Code | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """`events` stored and queued, then drained by `workers` worker processes at once."""
    url = databases.fresh_pg(code)
    databases.flush_redis()
    results_path = work / "events-upstreams.json"
    results_path.unlink(missing_ok=True)
    report: dict[str, Any] = {"events": events, "workers": workers, "settings": SETTINGS_NOTE}
    with upstreams(log_dir, results_path) as ports:
        rules = write_rules(work / "rules-events", SINK_RULES.format(sink=ports["sink"]))
        env = pipeline_env(url, ports, rules, log_level)
        env |= {"PARTNER_API_RATE": "off", "RECONCILE_INTERVAL": "off"}
        web_port = processes.free_port()
        with processes.running(
            "events-web",
            processes.receiver_args(port=web_port),
            env=env,
            port=web_port,
            log_dir=log_dir,
            code=code,
        ) as web:
            accepted = asyncio.run(_post_all(web.url + "/webhooks/partner", events))
            report["accepted"] = len(accepted)
            report |= _wait_queued(url, events)
            started = time.time()
            with contextlib.ExitStack() as stack:
                # Started together; each boots in about a second, so the first drains alone
                # for that long (the rate is taken from the sink's first to last arrival).
                running = [
                    stack.enter_context(
                        processes.running_worker(
                            "events-worker" + (f"-{n}" if n else ""),
                            env=env,
                            log_dir=log_dir,
                            code=code,
                        )
                    )
                    for n in range(workers)
                ]
                for worker in running:
                    processes.wait_log(worker, "runtime open")
                pids = [worker.pid for worker in running]
                cpu_before = sum(processes.cpu_seconds(pid) for pid in pids)
                with (
                    processes.MemoryWatch(pids[0]) as watch,
                    processes.CpuShare(pids[0]) as cpu,
                ):
                    report["sent"] = _wait_sent(url, events, timeout=60 + events / 5)
                worker_cpu = sum(processes.cpu_seconds(pid) for pid in pids) - cpu_before
            report["worker_peak_mb"] = round(watch.peak_largest, 1)
            report["cpu"] = cpu.result
            report["worker_cpu_ms_per_event"] = round(1000 * worker_cpu / events, 2)
    wait_for(results_path, 30)
    received = json.loads(results_path.read_text())
    times = sorted(
        item["at"]
        for item in received["sink"]
        if isinstance(item["body"], dict) and str(item["body"].get("correlation_id")) in accepted
    )
    report["arrived"] = len(times)
    if len(times) >= 2:
        report["first_arrival_after_start_s"] = round(times[0] - started, 2)
        report["events_per_second"] = round((len(times) - 1) / (times[-1] - times[0]), 1)
    report["summary"] = {
        k: report.get(k)
        for k in (
            "events",
            "arrived",
            "events_per_second",
            "worker_cpu_ms_per_event",
            "worker_peak_mb",
            "cpu",
        )
    }
    return report
