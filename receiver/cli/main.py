"""`hub-receiver`: serve, worker, migrate, and the commands ops use to look and act.

Every listing has a `--json` form for scripts. Settings are read once here and passed down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from receiver.cli import arguments
from receiver.logs import configure_logging
from receiver.settings import Settings, SettingsError, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from receiver.app import create_app
    from receiver.db.migrate import upgrade
    from receiver.http.server import uvicorn_options

    if settings.is_sqlite or args.migrate:
        # The embedded default applies its migrations itself; on PostgreSQL that is the
        # Procfile's `release` step (`hub-receiver migrate`), unless --migrate is given.
        upgrade(settings.database_url)
    host = args.host or settings.host
    port = args.port or settings.port
    common: dict[str, Any] = {"host": host, "port": port, **uvicorn_options(settings)}
    if settings.web_concurrency > 1:
        uvicorn.run(
            "receiver.asgi:make_app", factory=True, workers=settings.web_concurrency, **common
        )
    else:
        uvicorn.run(create_app(settings), **common)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import uvloop

    from receiver.worker import run_worker

    uvloop.run(run_worker(settings, burst=args.burst))
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from receiver.db.migrate import migrate

    print(migrate(settings.database_url).describe())
    return 0


def _events_list(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.views import events_list
    from receiver.ops.records import Filters, Window

    filters = Filters(
        since=args.since,
        until=args.until,
        event_type=args.type,
        channel=args.channel,
        client=args.client,
        state=args.state,
        external_id=args.external_id,
        search=args.search,
    )
    before = str(args.before) if args.before is not None else None
    window = Window(limit=args.limit, cursor=before, offset=args.offset)
    return asyncio.run(events_list(settings, filters=filters, window=window, as_json=args.json))


def _events_show(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.views import event_show

    return asyncio.run(event_show(settings, args.event, as_json=args.json))


def _event_time(text: str) -> datetime:
    from receiver.ops.records import FilterError, parse_time

    try:
        return parse_time(text, now=datetime.now(UTC))
    except FilterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _channels_list(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.views import channels_list

    return asyncio.run(channels_list(settings, limit=args.limit, as_json=args.json))


def _clients_list(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.views import clients_list

    return asyncio.run(clients_list(settings, limit=args.limit, as_json=args.json))


def _clients_show(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.views import client_show

    return asyncio.run(client_show(settings, args.client_id, as_json=args.json))


def _channels_show(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.views import channel_show

    return asyncio.run(channel_show(settings, args.channel_id, as_json=args.json))


def _deliveries_list(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.views import deliveries_list

    return asyncio.run(
        deliveries_list(settings, state=args.state, limit=args.limit, as_json=args.json)
    )


def _deliveries_retry(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.views import deliveries_retry

    if not args.ids and not args.all_dead:
        print("name delivery ids, or --all-dead", file=sys.stderr)
        return 2
    return asyncio.run(deliveries_retry(settings, ids=args.ids, all_dead=args.all_dead))


def _load_rules_or_report(settings: Settings) -> Any:
    from receiver.routing.errors import RulesError
    from receiver.routing.rules_state import load
    from receiver.services import utc_now

    try:
        return load(settings, now=utc_now())
    except RulesError as exc:
        print(str(exc), file=sys.stderr)
        return None


def _rules_check(_args: argparse.Namespace, settings: Settings) -> int:
    from receiver.ops.rules import client_email_problem

    loaded = _load_rules_or_report(settings)
    mail_problem = client_email_problem(settings)
    if mail_problem:
        print(mail_problem, file=sys.stderr)
    if loaded is None or mail_problem:
        return 1
    rules = loaded.rules
    for warning in rules.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    targets = ", ".join(
        f"{name}{'' if target.configured else ' (not configured)'}"
        + (f" -> fallback {target.fallback}" if target.fallback else "")
        for name, target in rules.targets.items()
    )
    print(f"{settings.rules_path}: {len(rules.rules)} rules OK; targets: {targets or 'none'}")
    return 0


def _rules_schema(_args: argparse.Namespace, _settings: Settings) -> int:
    from receiver.routing.schema import rules_json_schema

    print(json.dumps(rules_json_schema(), indent=2))
    return 0


def _rules_test(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from receiver.ops.rules import parse_status_change, test_event
    from receiver.routing.explain import explanation_as_dict, format_explanation
    from receiver.services import utc_now

    if args.cases is not None:
        if args.event_file is not None or args.status or args.brief:
            print("give either EVENT.json or --cases PATH (with --json at most)", file=sys.stderr)
            return 2
        return _rules_test_cases(args, settings)
    if args.event_file is None:
        print("give EVENT.json, or --cases PATH", file=sys.stderr)
        return 2
    loaded = _load_rules_or_report(settings)
    if loaded is None:
        return 1
    change = parse_status_change(args.status) if args.status else None
    try:
        text = Path(args.event_file).read_text(encoding="utf-8")
        tested = test_event(loaded, settings, text, status_change=change, now=utc_now())
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.event_file}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(explanation_as_dict(tested.explanation), indent=2))
    else:
        from receiver.cli.terminal import clean_lines

        print(clean_lines(format_explanation(tested.explanation, verbose=not args.brief)))
    if tested.reads_as is not None:
        status, why = tested.reads_as
        print(
            f"note: no status change simulated. This body's channel reads as "
            f"'{status}' ({why}); production compares that with the stored "
            f"status: `--status {status}` shows a first sighting, "
            f"`--status OLD:{status}` a change.",
            file=sys.stderr,
        )
    unconfigured = [name for name, target in loaded.rules.targets.items() if not target.configured]
    if unconfigured:
        from receiver.dev.run import unconfigured_targets_note

        print(unconfigured_targets_note(unconfigured), file=sys.stderr)
    return 0


def _rules_test_cases(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace
    from pathlib import Path

    import orjson

    from receiver.pipeline.snapshots import storable
    from receiver.pipeline.subject import preview_subject
    from receiver.routing.cases import (
        Case,
        CasesError,
        format_results,
        load_cases,
        results_as_dict,
        run_cases,
    )
    from receiver.routing.subject import RoutingSubject
    from receiver.services import utc_now

    try:
        cases = load_cases(Path(args.cases))
    except CasesError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    loaded = _load_rules_or_report(settings)
    if loaded is None:
        return 1
    now = utc_now()

    def subject_of(case: Case) -> RoutingSubject:
        # The subject `rules test EVENT.json` builds (the production parser, row and
        # subject); the case's channel and client stand in for what enrichment stores.
        text = orjson.dumps(case.event).decode()
        subject = preview_subject(text, now=case.at or now, status_change=case.change)
        found: dict[str, Any] = {}
        if case.channel is not None:
            found["channel"] = storable(case.channel)
        if case.client is not None:
            found["client"] = storable(case.client)
        if case.claim is not None:  # what `event_fields` adds for a judged permission claim
            found["event"] = {**subject.event, "claim": str(case.claim)}
        return replace(subject, **found)

    results = run_cases(loaded.rules, cases, build_subject=subject_of)
    if args.json:
        print(json.dumps(results_as_dict(results), indent=2))
    else:
        print(format_results(results))
    return 0 if all(result.passed for result in results) else 1


def _send_test(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.dev.send_test import SendTestError, post, sample_body

    try:
        body = sample_body(args.event, keep_id=args.keep_id, channel=args.channel)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    url = args.url or f"http://{host}:{settings.port}"
    signing = (
        settings.d360_webhook_secret[0].get_secret_value() if settings.d360_webhook_secret else None
    )
    shared = (
        settings.webhook_shared_secret[0].get_secret_value()
        if settings.webhook_shared_secret
        else None
    )
    dev_default = signing is None and shared is None
    if dev_default:
        # What `dev` checks when no secret is configured; a service without any secret
        # accepts the signature unchecked, one with another secret refuses it (401).
        from receiver.dev.send_test import DEV_WEBHOOK_SECRET

        signing = DEV_WEBHOOK_SECRET
    try:
        response = post(
            base_url=url,
            body=body,
            signing_secret=signing,
            shared_secret=shared,
            shared_secret_header=settings.webhook_shared_secret_header,
        )
    except SendTestError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    how = (
        "signed with dev's default secret"
        if dev_default
        else "signed"
        if signing
        else "with the shared secret"
    )
    print(f"POST {url}/webhooks/partner ({args.event}, {how})")
    print(f"-> {response.status_code} {response.text}")
    return 0 if response.is_success else 1


def _dev(args: argparse.Namespace, _settings: Settings) -> int:
    from receiver.dev.run import DevError, dev_settings, run_dev

    settings = dev_settings()
    try:
        asyncio.run(
            run_dev(
                settings,
                host=args.host or settings.host,
                port=args.port or settings.port,
                with_sinks=not args.no_sinks,
                sink_port=args.sink_port,
                smtp_port=args.smtp_port,
                hub_port=args.hub_port,
                fakes_only=args.fakes_only,
            )
        )
    except (DevError, OSError) as exc:
        print(f"hub-receiver dev: {exc}", file=sys.stderr)
        return 1
    return 0


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.ops_commands import replay_command

    return asyncio.run(
        replay_command(
            settings,
            event_ids=args.ids,
            since=args.since,
            until=args.until,
            channel=args.channel,
            event_type=args.type,
            dry_run=args.dry_run,
            force=args.force,
            as_json=args.json,
        )
    )


def _retention(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.ops_commands import retention_command

    return asyncio.run(retention_command(settings, days=args.days, as_json=args.json))


def _numbers_set_key(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.health_commands import set_key_command

    return asyncio.run(set_key_command(settings, channel_id=args.channel_id, stream=sys.stdin))


def _numbers_import_keys(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from receiver.cli.health_commands import import_keys_command

    return asyncio.run(import_keys_command(settings, path=Path(args.file)))


def _numbers_remove_key(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.health_commands import remove_key_command

    return asyncio.run(remove_key_command(settings, channel_id=args.channel_id))


def _health_check(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.health_commands import health_check_command

    return asyncio.run(
        health_check_command(settings, channel_ids=args.channel_ids, as_json=args.json)
    )


def _balance_check(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.balance_commands import balance_check_command

    return asyncio.run(balance_check_command(settings, as_json=args.json))


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.cli.reconcile_commands import reconcile_command

    return asyncio.run(reconcile_command(settings, dry_run=args.dry_run, as_json=args.json))


def _export_numbers(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from receiver.cli.export_command import export_numbers_command

    output = Path(args.output) if args.output is not None else None
    return asyncio.run(
        export_numbers_command(
            settings, output=output, refresh=args.refresh, spreadsheet=not args.plain
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub-receiver",
        description="360dialog partner webhook receiver and notification router",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web service (applies migrations on SQLite)")
    serve.add_argument("--host", help="interface to bind (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    serve.add_argument(
        "--migrate", action="store_true", help="apply migrations first, on any database"
    )
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run the arq worker (needs REDIS_URL)")
    worker.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    worker.set_defaults(handler=_worker)

    migrate = commands.add_parser("migrate", help="upgrade the database schema")
    migrate.set_defaults(handler=_migrate)

    events = commands.add_parser("events", help="look at stored events")
    events_commands = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    events_list = events_commands.add_parser("list", help="latest events, newest first")
    events_list.add_argument("--type", help="event type, e.g. channel_live")
    events_list.add_argument("--channel", help="channel id")
    events_list.add_argument("--client", help="client id")
    events_list.add_argument("--state", help="received, processed or failed")
    events_list.add_argument("--external-id", help="360dialog's event id (the webhook's `id`)")
    events_list.add_argument(
        "--search", metavar="TEXT", help="our id, 360dialog's id, channel, client or phone digits"
    )
    events_list.add_argument(
        "--since", type=_event_time, help="ISO time or a duration back from now: 30m, 2h, 1d"
    )
    events_list.add_argument("--until", type=_event_time, help="ISO time or a duration ago")
    events_list.add_argument("--limit", type=arguments.count, default=20)
    paging = events_list.add_mutually_exclusive_group()
    paging.add_argument(
        "--before", type=arguments.row_id, metavar="ID", help="the next page: events older than ID"
    )
    paging.add_argument("--offset", type=arguments.count, default=0)
    events_list.add_argument("--json", action="store_true", help="machine-readable output")
    events_list.set_defaults(handler=_events_list)
    events_show = events_commands.add_parser(
        "show", help="one event: body, headers, verdicts, status change, deliveries"
    )
    events_show.add_argument("event", metavar="ID", help="our event id or 360dialog's id")
    events_show.add_argument("--json", action="store_true", help="machine-readable output")
    events_show.set_defaults(handler=_events_show)

    channels = commands.add_parser("channels", help="channels (numbers), their status and history")
    channels_commands = channels.add_subparsers(
        dest="channels_command", required=True, metavar="ACTION"
    )
    channels_list = channels_commands.add_parser("list", help="known channels with status")
    channels_list.add_argument("--limit", type=arguments.count, default=50)
    channels_list.add_argument("--json", action="store_true")
    channels_list.set_defaults(handler=_channels_list)
    channels_show = channels_commands.add_parser("show", help="one channel with its status history")
    channels_show.add_argument("channel_id")
    channels_show.add_argument("--json", action="store_true")
    channels_show.set_defaults(handler=_channels_show)

    clients = commands.add_parser("clients", help="clients, their balance and usage")
    clients_commands = clients.add_subparsers(
        dest="clients_command", required=True, metavar="ACTION"
    )
    clients_list = clients_commands.add_parser("list", help="known clients with balance")
    clients_list.add_argument("--limit", type=arguments.count, default=50)
    clients_list.add_argument("--json", action="store_true")
    clients_list.set_defaults(handler=_clients_list)
    clients_show = clients_commands.add_parser(
        "show", help="one client: contact, balance, usage, balance history, numbers"
    )
    clients_show.add_argument("client_id")
    clients_show.add_argument("--json", action="store_true")
    clients_show.set_defaults(handler=_clients_show)

    deliveries = commands.add_parser("deliveries", help="notifications: list, retry dead ones")
    deliveries_commands = deliveries.add_subparsers(
        dest="deliveries_command", required=True, metavar="ACTION"
    )
    deliveries_list = deliveries_commands.add_parser("list", help="latest deliveries")
    deliveries_list.add_argument(
        "--state", help="pending, sending, sent, failed, dead, held, skipped, throttled"
    )
    deliveries_list.add_argument("--limit", type=arguments.count, default=50)
    deliveries_list.add_argument("--json", action="store_true")
    deliveries_list.set_defaults(handler=_deliveries_list)
    deliveries_retry = deliveries_commands.add_parser(
        "retry", help="send dead, failed or held deliveries again"
    )
    deliveries_retry.add_argument("ids", nargs="*", type=arguments.row_id)
    deliveries_retry.add_argument(
        "--all-dead", action="store_true", help="every dead or failed delivery"
    )
    deliveries_retry.set_defaults(handler=_deliveries_retry)

    rules = commands.add_parser("rules", help="routing rules: check, test, schema")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rules_check = rules_commands.add_parser(
        "check", help="validate RULES_PATH (file, line, rule, key)"
    )
    rules_check.set_defaults(handler=_rules_check)
    rules_test = rules_commands.add_parser(
        "test", help="which rules match EVENT.json, and the messages; or run --cases"
    )
    rules_test.add_argument("event_file", metavar="EVENT.json", nargs="?")
    rules_test.add_argument(
        "--cases",
        metavar="PATH",
        help="run the rule test cases in a YAML file or folder; exit 1 when one fails",
    )
    rules_test.add_argument("--status", help="simulate a status change, e.g. draft:live or live")
    rules_test.add_argument("--brief", action="store_true", help="only the rules that match")
    rules_test.add_argument("--json", action="store_true")
    rules_test.set_defaults(handler=_rules_test)
    rules_schema = rules_commands.add_parser("schema", help="print the rules files' JSON Schema")
    rules_schema.set_defaults(handler=_rules_schema)

    send_test = commands.add_parser("send-test", help="post a sample event to a running instance")
    send_test.add_argument("event", help="e.g. channel_live, client_created, account_violation")
    send_test.add_argument("--url", help="base URL (default: http://HOST:PORT)")
    send_test.add_argument("--channel", help="use this channel id instead of the sample's")
    send_test.add_argument(
        "--keep-id", action="store_true", help="keep the sample's id (tests dedup)"
    )
    send_test.set_defaults(handler=_send_test)

    replay = commands.add_parser(
        "replay", help="re-run routing for stored events under the current rules"
    )
    replay.add_argument("ids", nargs="*", type=arguments.row_id, help="event ids")
    replay.add_argument("--since", type=_timestamp, help="ISO time, e.g. 2026-11-01T00:00:00Z")
    replay.add_argument("--until", type=_timestamp)
    replay.add_argument("--channel")
    replay.add_argument("--type", help="event type")
    replay.add_argument("--dry-run", action="store_true", help="show now-vs-then, send nothing")
    replay.add_argument("--force", action="store_true", help="send every match once more")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=_replay)

    retention = commands.add_parser("retention", help="delete old raw bodies (records stay)")
    retention_commands = retention.add_subparsers(
        dest="retention_command", required=True, metavar="ACTION"
    )
    retention_run = retention_commands.add_parser(
        "run", help="purge now (RETENTION_DAYS or --days)"
    )
    retention_run.add_argument("--days", type=arguments.days)
    retention_run.add_argument("--json", action="store_true")
    retention_run.set_defaults(handler=_retention)

    numbers = commands.add_parser("numbers", help="numbers' own API keys (for health checks)")
    numbers_commands = numbers.add_subparsers(
        dest="numbers_command", required=True, metavar="ACTION"
    )
    set_key = numbers_commands.add_parser(
        "set-key", help="store a number's API key, read from standard input (never argv)"
    )
    set_key.add_argument("channel_id")
    set_key.set_defaults(handler=_numbers_set_key)
    import_keys = numbers_commands.add_parser(
        "import-keys", help="store keys from a CSV file of channel_id,api_key"
    )
    import_keys.add_argument("file")
    import_keys.set_defaults(handler=_numbers_import_keys)
    remove_key = numbers_commands.add_parser("remove-key", help="forget a number's API key")
    remove_key.add_argument("channel_id")
    remove_key.set_defaults(handler=_numbers_remove_key)

    health = commands.add_parser("health", help="numbers' WhatsApp health (needs their keys)")
    health_commands = health.add_subparsers(dest="health_command", required=True, metavar="ACTION")
    health_check = health_commands.add_parser(
        "check", help="check numbers now (never one checked less than 5 minutes ago)"
    )
    health_check.add_argument("channel_ids", nargs="*", metavar="CHANNEL_ID")
    health_check.add_argument("--json", action="store_true")
    health_check.set_defaults(handler=_health_check)

    balance = commands.add_parser("balance", help="clients' 360dialog balance")
    balance_commands = balance.add_subparsers(
        dest="balance_command", required=True, metavar="ACTION"
    )
    balance_check = balance_commands.add_parser(
        "check", help="ask every client's balance now (1 request per 10 s, all processes)"
    )
    balance_check.add_argument("--json", action="store_true")
    balance_check.set_defaults(handler=_balance_check)

    reconcile = commands.add_parser(
        "reconcile", help="compare every channel and client with the Partner API now"
    )
    reconcile.add_argument(
        "--dry-run", action="store_true", help="show what it would record, record nothing"
    )
    reconcile.add_argument("--json", action="store_true")
    reconcile.set_defaults(handler=_reconcile)

    export = commands.add_parser("export", help="the numbers as CSV, for a spreadsheet or a script")
    export_commands = export.add_subparsers(dest="export_command", required=True, metavar="WHAT")
    export_numbers = export_commands.add_parser(
        "numbers", help="one row per number, from the stored snapshots (Excel-ready by default)"
    )
    export_numbers.add_argument(
        "--output", metavar="FILE", help="write FILE (replaced once complete), not standard output"
    )
    export_numbers.add_argument(
        "--refresh",
        action="store_true",
        help="reconcile with the Partner API first and wait for serve or a worker to store it",
    )
    export_numbers.add_argument(
        "--plain",
        action="store_true",
        help="for scripts: no BOM, no formula guard (values as stored), the same quoting",
    )
    export_numbers.set_defaults(handler=_export_numbers)

    dev = commands.add_parser(
        "dev", help="the service plus a fake Partner API, HTTP sink and mailbox"
    )
    dev.add_argument("--host")
    dev.add_argument("--port", type=int)
    dev.add_argument("--hub-port", type=int, default=8701, help="fake Partner API port")
    dev.add_argument("--sink-port", type=int, default=8702, help="HTTP sink for chat messages")
    dev.add_argument("--smtp-port", type=int, default=8025, help="SMTP mailbox for client emails")
    dev.add_argument(
        "--no-sinks", action="store_true", help="use the targets configured in the environment"
    )
    dev.add_argument(
        "--fakes-only",
        action="store_true",
        help="only the fake Partner API, sink and mailbox (try `serve` + `worker` against them)",
    )
    dev.set_defaults(handler=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"hub-receiver: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    handler: Handler = args.handler
    from receiver.routing.errors import RulesError

    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except RulesError as exc:  # a command that routes (reconcile, ...) loads RULES_PATH first
        print(str(exc), file=sys.stderr)
        return 1
    except Exception as exc:
        # A database that is down or refuses us is the one failure every command can meet:
        # say so in one line. Anything else is a bug, and keeps its traceback.
        failure = arguments.database_failure(exc, database_url=settings.database_url)
        if failure is None:
            raise
        print(f"hub-receiver: {failure}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
