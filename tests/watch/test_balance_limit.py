"""The balance limit across processes: two real `hub-receiver balance check` at once."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from receiver.db.store.channels import insert_client
from receiver.dev.sample_data import ACME_CLIENT_ID, NORDWIND_CLIENT_ID
from receiver.settings import Settings
from receiver.watch.balance import LIMIT_INTERVAL
from tests.support.fakes import API_KEY, PARTNER_ID, Hub
from tests.support.processes import REPO, process_env
from tests.watch.support import assert_spaced, open_services


async def balance_check(env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiver",
        "balance",
        "check",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_two_processes_polling_together_send_at_most_one_request_per_10_seconds(
    pg_url: str, hub: Hub, tmp_path: Path
) -> None:
    hub.state.set_balance(NORDWIND_CLIENT_ID, balance=3, currency="EUR")
    settings = Settings(database_url=pg_url)
    async with open_services(settings) as services, services.sessions.begin() as session:
        for client_id in (ACME_CLIENT_ID, NORDWIND_CLIENT_ID):
            await insert_client(
                session,
                client_id=client_id,
                values={
                    "snapshot": {},
                    "fetched_at": services.clock(),
                    "source": "partner_api",
                },
            )
    env = process_env(
        {
            "DATABASE_URL": pg_url,
            "D360_PARTNER_ID": PARTNER_ID,
            "D360_API_KEY": API_KEY,
            "D360_API_BASE": hub.url,
            "RULES_PATH": REPO / "routing_rules",
        }
    )
    started = time.monotonic()
    (code_a, out_a, err_a), (code_b, out_b, err_b) = await asyncio.gather(
        balance_check(env), balance_check(env)
    )
    took = time.monotonic() - started
    assert (code_a, code_b) == (0, 0), err_a[-2000:] + err_b[-2000:]

    times = [r.at for r in hub.state.requests if r.path.endswith("/info/balance")]
    assert len(times) == 4  # each process asked about both clients
    assert_spaced(times, LIMIT_INTERVAL)  # ... one slot of the one shared limit each
    assert took >= 3 * LIMIT_INTERVAL
    for out in (out_a, out_b):  # each showed its progress as it went
        assert "[1/2]" in out, out
        assert "[2/2]" in out, out
        assert "42.5 EUR, usage this month 7.25" in out, out
