"""`hub-receiver dev` as a newcomer meets it: a real process, real ports, Ctrl-C.

It prints where everything is, refuses a busy port naming it, stops at once on Ctrl-C even
with a delivery waiting for its retry, runs the fakes alone for trying `serve` + `worker` by
hand, and `rules test` run beside it says how to see the targets dev uses.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from receiver.dev.run import DEV_API_KEY, DEV_PARTNER_ID
from receiver.http.loopback import free_port
from tests.support.cli import hub_receiver
from tests.support.processes import REPO, process_env
from tests.support.samples import sample_path

pytestmark = pytest.mark.timeout(90)

SAMPLE = sample_path("partner_webhook.channel_live.json")
STOP_BOUND = 9.0  # generous: measured well under 2 s; a waiting retry once held it 10 s


@dataclass
class Dev:
    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in (output := self.output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in dev's output:\n{output[-3000:]}")
            time.sleep(0.1)
        return output

    def stop(self, signum: signal.Signals) -> tuple[int, float]:
        """Send `signum`; return the exit status and the seconds it took to exit."""
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            status = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return status, time.monotonic() - started


def dev_ports() -> dict[str, int]:
    return {name: free_port() for name in ("port", "hub-port", "sink-port", "smtp-port")}


def dev_argv(ports: dict[str, int], *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "receiver", "dev", *extra]
    for name, port in ports.items():
        if not ("--fakes-only" in extra and name == "port"):
            argv += [f"--{name}", str(port)]
    return argv


class StartDev(Protocol):
    def __call__(self, *extra: str, ports: dict[str, int] | None = None, **env: str) -> Dev: ...


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[StartDev]:
    started: list[Dev] = []

    def start(*extra: str, ports: dict[str, int] | None = None, **env: str) -> Dev:
        ports = ports or dev_ports()
        log = tmp_path / f"dev{len(started)}.log"
        values = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}", **env}
        with log.open("wb") as out:
            process = subprocess.Popen(
                dev_argv(ports, *extra),
                cwd=REPO,
                env=process_env(values),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        dev = Dev(process, log, ports)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        if dev.process.poll() is None:
            dev.process.kill()
            dev.process.wait()


def test_dev_prints_its_addresses_and_stops_cleanly_on_ctrl_c(start_dev: StartDev) -> None:
    dev = start_dev()
    output = dev.wait_for_output("mailbox")
    ports = dev.ports

    for url in (
        f"http://127.0.0.1:{ports['port']}",
        f"http://127.0.0.1:{ports['hub-port']}",
        f"http://127.0.0.1:{ports['sink-port']}/_received",
        f"smtp://127.0.0.1:{ports['smtp-port']}",
    ):
        assert url in output
    assert httpx.get(f"http://127.0.0.1:{ports['port']}/healthz").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{ports['sink-port']}/_received").json() == []

    status, seconds = dev.stop(signal.SIGINT)

    assert status == 0, dev.output()[-3000:]
    assert seconds < STOP_BOUND
    assert "Traceback" not in dev.output()


def test_ctrl_c_does_not_wait_for_a_delivery_that_waits_for_its_retry(start_dev: StartDev) -> None:
    # Nothing listens on the team's target: the send fails and waits 30 s for its retry.
    closed = f"json://127.0.0.1:{free_port()}/ops"
    dev = start_dev("--no-sinks", OPS_NOTIFY_URL=closed)
    dev.wait_for_output("fake Partner API")
    sent = hub_receiver("send-test", "channel_created", port=dev.ports["port"], timeout=30)
    assert sent.returncode == 0, sent.stderr
    dev.wait_for_output("delivery failed")

    status, seconds = dev.stop(signal.SIGINT)

    assert status == 0, dev.output()[-3000:]
    assert seconds < STOP_BOUND, f"took {seconds:.1f}s"
    assert "Traceback" not in dev.output()


def test_a_second_dev_on_a_busy_port_names_the_port_and_exits_1(start_dev: StartDev) -> None:
    first = start_dev()
    first.wait_for_output("mailbox")

    second = start_dev(ports=first.ports)
    status = second.process.wait(timeout=30)

    assert status == 1
    output = second.output()
    assert f"port {first.ports['port']} on 127.0.0.1 for the service (--port)" in output
    assert "already in use" in output
    assert "Traceback" not in output
    assert "Task exception was never retrieved" not in output


def test_fakes_only_serves_the_fakes_and_prints_the_environment_for_serve_and_worker(
    start_dev: StartDev,
) -> None:
    dev = start_dev("--fakes-only")
    output = dev.wait_for_output("export ")
    ports = dev.ports
    [line] = [line for line in output.splitlines() if line.strip().startswith("export ")]
    env = dict(item.split("=", 1) for item in shlex.split(line.strip())[1:])

    assert env["D360_API_BASE"] == f"http://127.0.0.1:{ports['hub-port']}"
    assert env["D360_PARTNER_ID"] == DEV_PARTNER_ID
    assert env["OPS_NOTIFY_URL"] == f"json://127.0.0.1:{ports['sink-port']}/ops"
    assert env["CLIENT_EMAIL_URL"].startswith(f"mailto://127.0.0.1:{ports['smtp-port']}?")
    hub = httpx.get(
        f"{env['D360_API_BASE']}/partners/{DEV_PARTNER_ID}/channels",
        headers={"X-API-Key": DEV_API_KEY},
    )
    assert hub.status_code == 200
    with pytest.raises(httpx.ConnectError):  # no service
        httpx.get(f"http://127.0.0.1:{ports['port']}/healthz")

    status, _seconds = dev.stop(signal.SIGTERM)
    assert status == 0, dev.output()[-3000:]
    assert "Traceback" not in dev.output()


def test_rules_test_beside_dev_says_how_to_see_the_targets_dev_uses() -> None:
    alone = hub_receiver("rules", "test", str(SAMPLE))
    assert alone.returncode == 0, alone.stderr
    assert "ops [ops]: not configured" in alone.stdout
    [hint] = re.findall(r"export OPS_NOTIFY_URL=\S+", alone.stderr)
    url = hint.split("=", 1)[1]
    assert url == "json://127.0.0.1:8702/ops"  # dev's sink on its default port

    with_dev_targets = hub_receiver("rules", "test", str(SAMPLE), OPS_NOTIFY_URL=url)
    assert "ops [ops]: configured" in with_dev_targets.stdout


def test_the_readme_tour_emails_the_client_without_any_secret_set_up(
    start_dev: StartDev, tmp_path: Path
) -> None:
    # The one-minute tour: `dev` in one shell, `send-test channel_live` in another, nothing
    # exported. Only authenticated webhooks reach clients, so both use dev's default secret.
    dev = start_dev()
    output = dev.wait_for_output("mailbox")
    assert "webhook secret" in output
    sent = hub_receiver("send-test", "channel_live", port=dev.ports["port"], timeout=30)
    assert sent.returncode == 0, sent.stderr
    assert "signed with dev's default secret" in sent.stdout

    listing: list[dict[str, object]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        database = f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}"
        shown = hub_receiver("deliveries", "list", "--json", database_url=database, timeout=30)
        assert shown.returncode == 0, shown.stderr
        listing = json.loads(shown.stdout)
        if len(listing) >= 2 and all(item["state"] == "sent" for item in listing):
            break
        time.sleep(0.3)
    assert sorted(str(item["target"]) for item in listing) == ["client", "ops"], listing
    assert all(item["state"] == "sent" for item in listing), listing

    # "Opens the URL it prints, logs in with the token it prints": the tour in the dashboard.
    found = re.search(r"dashboard\s+(http://\S+/ui/)\s+\(log in with the token (\S+)\)", output)
    assert found is not None, output
    url, token = found.groups()
    with httpx.Client(base_url=url.removesuffix("/ui/"), timeout=10) as browser:
        assert browser.get("/ui/").status_code == 303  # to the login page
        login = browser.post("/ui/login", data={"token": token, "next": "/ui/"})
        assert login.status_code == 303, login.text
        numbers = browser.get("/ui/")
        assert numbers.status_code == 200
        assert "+4915112345678" in numbers.text  # the tour's number, as a card
        events = browser.get("/ui/events").text
        assert "channel_live" in events
        deliveries = browser.get("/ui/deliveries").text
        assert deliveries.count('class="badge state-sent"') >= 2
        exported = browser.get("/ui/export.csv")
        assert exported.status_code == 200
        rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
        assert rows[0][:2] == ["Company legal name", "WhatsApp number"]
        assert any("+4915112345678" in cell for row in rows[1:] for cell in row), rows
    assert token not in dev.output().replace(found.group(0), "")  # printed once, logged never
    status, _seconds = dev.stop(signal.SIGINT)
    assert status == 0
