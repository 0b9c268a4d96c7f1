"""`hub-receiver dev`: the service plus a fake Partner API, an HTTP sink and an SMTP mailbox.

Everything runs in one process on loopback so anyone can try the whole pipeline without
360dialog credentials: post with `hub-receiver send-test channel_live`, then look at the
sink (`GET <sink>/_received`) and at the mailbox lines printed here. `--fakes-only` runs the
fakes without the service, for trying `serve` + `worker` (PostgreSQL, Redis) by hand: it
prints the environment that points them at the fakes.

The process's signals are dev's own (the embedded servers leave them alone): Ctrl-C or
SIGTERM stops everything at once; only jobs that are running get a moment to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import shlex
import signal
import socket
from collections.abc import Callable, Mapping

import uvicorn

from receiver.app import create_app
from receiver.db.migrate import upgrade_async
from receiver.dev.fake_hub import FakeHubState, create_fake_hub_app
from receiver.dev.mailbox import Mailbox, run_mailbox
from receiver.dev.sample_data import default_state
from receiver.dev.send_test import DEV_WEBHOOK_SECRET
from receiver.dev.sink import SinkState, create_sink_app
from receiver.http.loopback import EmbeddedServer, serve_app
from receiver.http.server import uvicorn_options
from receiver.settings import Settings, load_settings

log = logging.getLogger("receiver.dev")

DEV_PARTNER_ID = "devPA"
DEV_API_KEY = "dev-api-key"
DEV_HOST = "127.0.0.1"
HUB_PORT = 8701
DEV_NUMBER_CHANNEL = "kJ2mQ8CH"
DEV_NUMBER_KEY = "dev-number-key"  # the fake's sample key, not a secret
# Dev's KEYS_SECRET when none is set: a fixed, public Fernet key (it decodes to
# "hub-receiver-dev-keys-not-secret"), so keys stored during one `dev` run are still
# readable by the next one and by the other shell's `numbers set-key` / `health check`.
DEV_KEYS_SECRET = "aHViLXJlY2VpdmVyLWRldi1rZXlzLW5vdC1zZWNyZXQ="
# What the watcher commands run in another shell beside `dev` (`reconcile`, `numbers`,
# `health check`, `balance check`) need to reach the fakes and read the numbers' keys.
_OTHER_SHELL_VARIABLES = (
    "D360_PARTNER_ID",
    "D360_API_KEY",
    "D360_API_BASE",
    "D360_WABA_BASE",
    "D360_WABA_V2_BASE",
    "KEYS_SECRET",
)
SINK_PORT = 8702
SMTP_PORT = 8025
MAIL_SENDER = "hub-receiver@localhost"

Announce = Callable[[str], None]


class DevError(Exception):
    """Something the user must change before `dev` can run (a port in use); no traceback."""


def fakes_environment(
    *,
    host: str = DEV_HOST,
    hub_port: int = HUB_PORT,
    sink_port: int = SINK_PORT,
    smtp_port: int = SMTP_PORT,
    with_sinks: bool = True,
) -> dict[str, str]:
    """The variables that point hub-receiver at the dev fakes.

    `dev` gives them to its own service only (it changes nothing in your shell); other
    commands (`serve`, `worker`, `rules test`) see them once they are exported.
    """
    env = {
        "D360_PARTNER_ID": DEV_PARTNER_ID,
        "D360_API_KEY": DEV_API_KEY,
        "D360_API_BASE": f"http://{host}:{hub_port}",
        # The fake also answers the numbers' health endpoints (/health_status, /v1/health).
        "D360_WABA_BASE": f"http://{host}:{hub_port}",
        "D360_WABA_V2_BASE": f"http://{host}:{hub_port}",
        "D360_WEBHOOK_SECRET": DEV_WEBHOOK_SECRET,
    }
    if with_sinks:
        # The shipped rules (routing_rules/default.yaml) send the team's messages to
        # ${OPS_NOTIFY_URL}; the sink records whatever arrives under any path.
        env["OPS_NOTIFY_URL"] = f"json://{host}:{sink_port}/ops"
        env["CLIENT_EMAIL_URL"] = f"mailto://{host}:{smtp_port}?from={MAIL_SENDER}"
    return env


def export_line(env: Mapping[str, str]) -> str:
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())


def unconfigured_targets_note(names: list[str]) -> str:
    """Why `rules test` run beside `dev` finds the team's target unconfigured, and the fix."""
    env = fakes_environment()
    wanted = {name: env[name] for name in ("OPS_NOTIFY_URL", "CLIENT_EMAIL_URL")}
    return (
        f"note: not configured in this shell: {', '.join(names)}. Targets read their URLs "
        "from the environment of the command that runs (OPS_NOTIFY_URL, ...); `hub-receiver "
        "dev` sets them for its own service only. To see here what dev sends:\n  "
        + export_line(wanted)
    )


def check_ports_free(host: str, ports: Mapping[str, int]) -> None:
    """Raise DevError naming the first port (and what it is for) that cannot be bound."""
    for what, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # Bound the way uvicorn binds, so a port in TIME_WAIT counts as free as it does there.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                reason = (
                    "is already in use (another `hub-receiver dev`?)"
                    if exc.errno == errno.EADDRINUSE
                    else f"cannot be used: {exc.strerror or exc}"
                )
                raise DevError(f"port {port} on {host} for {what} {reason}") from None


async def _watch_mailbox(mailbox: Mailbox) -> None:
    seen = 0
    while True:
        await asyncio.sleep(0.2)
        for message in mailbox.messages[seen:]:
            log.info("mailbox received", extra={"to": message.to, "subject": message.subject})
        seen = len(mailbox.messages)


def _stop_on_signals(on_signal: Callable[[], None]) -> Callable[[], None]:
    """Call `on_signal` on SIGINT and SIGTERM; return the function that removes the handlers."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)

    def remove() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)

    return remove


async def run_dev(
    base: Settings,
    *,
    host: str,
    port: int,
    with_sinks: bool,
    sink_port: int,
    smtp_port: int,
    hub_port: int,
    fakes_only: bool = False,
    announce: Announce = print,
) -> None:
    """Run the fakes (and the service unless `fakes_only`) until SIGINT or SIGTERM."""
    ports = {} if fakes_only else {"the service (--port)": port}
    ports["the fake Partner API (--hub-port)"] = hub_port
    if with_sinks or fakes_only:
        ports["the chat sink (--sink-port)"] = sink_port
        ports["the SMTP mailbox (--smtp-port)"] = smtp_port
    check_ports_free(host, ports)

    stop = asyncio.Event()
    server: uvicorn.Server | None = None

    def on_signal() -> None:
        if stop.is_set() and server is not None:
            server.force_exit = True  # a second Ctrl-C: do not wait for open connections
        stop.set()

    hub_state: FakeHubState = default_state(DEV_PARTNER_ID)
    # The number's own key the README's tour hands over with `numbers set-key`.
    hub_state.set_health(DEV_NUMBER_CHANNEL, api_key=DEV_NUMBER_KEY)
    hub_app = create_fake_hub_app(hub_state, api_key=DEV_API_KEY)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(_stop_on_signals(on_signal))
        hub_url = await stack.enter_async_context(serve_app(hub_app, host=host, port=hub_port))
        lines = [("fake Partner API", f"{hub_url}  (partner id {DEV_PARTNER_ID})")]
        overrides: dict[str, object] = {
            "d360_partner_id": DEV_PARTNER_ID,
            "d360_api_key": DEV_API_KEY,
            "d360_api_base": hub_url,
            "d360_waba_base": hub_url,
            "d360_waba_v2_base": hub_url,
            "host": host,
            "port": port,
        }
        if not base.webhook_auth_configured:
            overrides["d360_webhook_secret"] = DEV_WEBHOOK_SECRET
            lines.append(
                (
                    "webhook secret",
                    f"{DEV_WEBHOOK_SECRET!r} (dev's default; send-test signs with it)",
                )
            )
        if "reconcile_interval" not in base.model_fields_set:
            # On a timer, dev's first pass would learn the sample numbers before the tour's
            # send-test, and "your number is live" would be no news. One pass by hand instead.
            overrides["reconcile_interval"] = None
            lines.append(("reconcile", "by hand in dev (`hub-receiver reconcile`)"))
        env = fakes_environment(
            host=host, hub_port=hub_port, sink_port=sink_port, smtp_port=smtp_port
        )
        if base.keys_secret is None:
            # Never printed when it is the user's own: that one is a real secret.
            overrides["keys_secret"] = DEV_KEYS_SECRET
            env["KEYS_SECRET"] = DEV_KEYS_SECRET
            lines.append(("keys secret", "dev's default KEYS_SECRET (public: for trying only)"))
        if with_sinks or fakes_only:
            sink_url = await stack.enter_async_context(
                serve_app(create_sink_app(SinkState()), host=host, port=sink_port)
            )
            mailbox = stack.enter_context(run_mailbox(smtp_port, host=host))
            overrides["client_email_url"] = env["CLIENT_EMAIL_URL"]
            overrides["rules_env"] = {"OPS_NOTIFY_URL": env["OPS_NOTIFY_URL"], **base.rules_env}
            watcher = asyncio.create_task(_watch_mailbox(mailbox))
            stack.callback(watcher.cancel)
            lines.append(("chat sink", f"{sink_url}/_received  (what the team's chat got)"))
            lines.append(("mailbox", f"smtp://{host}:{mailbox.port}  (each email is logged here)"))

        if fakes_only:
            announce(_banner("hub-receiver dev --fakes-only: the fakes, no service", lines))
            announce(
                "Point `serve` and `worker` at them (each in its own shell), e.g.:\n  "
                + export_line(env)
            )
            await stop.wait()
            return

        if base.admin_token is None:
            # A new one each run, printed: the dashboard and admin API are for whoever runs dev.
            token = secrets.token_urlsafe(18)
            overrides["admin_token"] = token
            dashboard_login = f"the token {token}"
        else:
            dashboard_login = "your ADMIN_TOKEN"
        settings = base.with_overrides(**overrides)
        await upgrade_async(settings.database_url)
        config = uvicorn.Config(
            create_app(settings), host=host, port=port, **uvicorn_options(settings)
        )
        server = EmbeddedServer(config)
        task = asyncio.create_task(server.serve(), name="dev service")
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.02)
        if not server.started:
            with contextlib.suppress(BaseException):
                task.result()
            raise DevError(f"the service could not start on {host}:{port} (see the log above)")
        service = f"http://{host}:{port}"
        lines.insert(0, ("service", f"{service}  (hub-receiver send-test channel_live)"))
        lines.insert(1, ("dashboard", f"{service}/ui/  (log in with {dashboard_login})"))
        announce(_banner("hub-receiver dev is running", lines))
        announce(
            "For `reconcile`, `numbers set-key`, `health check` and `balance check` in "
            "another shell:\n  "
            + export_line({name: env[name] for name in _OTHER_SHELL_VARIABLES if name in env})
        )
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        server.should_exit = True
        await task


def _banner(title: str, lines: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in lines)
    body = "\n".join(f"  {name.ljust(width)}  {value}" for name, value in lines)
    return f"{title} (Ctrl-C stops it):\n{body}"


def dev_settings() -> Settings:
    """Dev runs on the same database as every other command (DATABASE_URL, else SQLite)."""
    return load_settings()
