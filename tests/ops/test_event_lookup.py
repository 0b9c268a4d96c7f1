"""Finding an event: by 360dialog's id or ours, by filters and search, in the API and the CLI."""

from __future__ import annotations

import json

import orjson

from receiver.ops.replay import replay
from tests.ops.support import (
    LIVE_RULE,
    SECRETS,
    WEBHOOK_SECRET,
    Sink,
    admin_get,
    channel_live,
    post_webhook,
    settle,
)
from tests.support.app import RunningApp
from tests.support.cli import hub_receiver
from tests.support.samples import sample

LIVE_ID = orjson.loads(sample("partner_webhook.channel_live.json"))["id"]


def external_id(n: int) -> str:
    """The top-level id `channel_live(n)` carries."""
    return f"{LIVE_ID[:-4]}{n:04d}"


async def test_the_admin_api_lists_and_finds_events_by_360dialogs_id(
    app: RunningApp, sink: Sink
) -> None:
    ids = [await post_webhook(app, channel_live(n)) for n in range(3)]
    await settle(app)

    listing = await admin_get(app, "/admin/events")
    newest = listing["items"][0]
    assert newest["id"] == ids[2]
    assert newest["external_id"] == external_id(2)
    assert newest["dedup_key"] == f"wh:id:channel_live:{external_id(2)}"

    found = await admin_get(app, "/admin/events", external_id=external_id(1))
    assert [e["id"] for e in found["items"]] == [ids[1]]
    assert (await admin_get(app, "/admin/events", external_id="nope"))["count"] == 0
    detail = await admin_get(app, f"/admin/events/{ids[1]}")
    assert detail["external_id"] == external_id(1)
    assert detail["dedup_key"] == found["items"][0]["dedup_key"]


async def test_search_finds_events_by_any_of_their_ids_or_phone_digits(
    app: RunningApp, sink: Sink
) -> None:
    ids = [await post_webhook(app, channel_live(n)) for n in range(2)]
    other = b'{"id": "x-1", "event": "client_created", "data": {"id": "Zz9yX8CL"}}'
    other_id = await post_webhook(app, other)
    await settle(app)

    async def search(text: str) -> list[int]:
        page = await admin_get(app, "/admin/events", search=text)
        return [e["id"] for e in page["items"]]

    both = [ids[1], ids[0]]
    assert await search(external_id(0)) == [ids[0]]
    assert await search(str(ids[1])) == [ids[1]]
    assert await search("kJ2mQ8CH") == both
    assert await search("Zz9yX8CL") == [other_id]
    assert await search("+49 151 1234 5678") == both
    assert await search("15112345678") == both
    assert await search("99999999999999999999999") == []
    assert await search("kJ2m") == []  # ids match whole, not in part
    # Filters combine with each other and with paging.
    assert [
        e["id"] for e in (await admin_get(app, "/admin/events", type="client_created"))["items"]
    ] == [other_id]
    assert (await admin_get(app, "/admin/events", since="1h"))["count"] == 3
    assert (await admin_get(app, "/admin/events", until="1h"))["count"] == 0
    page = await admin_get(app, "/admin/events", search="kJ2mQ8CH", limit=1)
    assert [e["id"] for e in page["items"]] == [ids[1]]
    rest = await admin_get(
        app, "/admin/events", search="kJ2mQ8CH", limit=1, cursor=page["next_cursor"]
    )
    assert [e["id"] for e in rest["items"]] == [ids[0]]


async def test_events_show_by_360dialog_id_prints_body_headers_verdicts_and_deliveries(
    app: RunningApp, sink: Sink, database_url: str
) -> None:
    event_id = await post_webhook(app, channel_live(7))
    await sink.state.wait_for(1)
    await settle(app)

    by_theirs = hub_receiver("events", "show", external_id(7), database_url=database_url)
    by_ours = hub_receiver("events", "show", str(event_id), database_url=database_url)

    assert by_theirs.returncode == 0, by_theirs.stderr
    assert by_theirs.stdout == by_ours.stdout
    page = by_theirs.stdout
    for expected in (
        f"event         {event_id} channel_live",
        f"360dialog id  {external_id(7)}",
        f"dedup key     wh:id:channel_live:{external_id(7)}",
        "verified      signature",
        "enrichment    not_configured",
        "signature_present: True",
        "content-type: application/json",
        "channel_id: kJ2mQ8CH",  # parsed fields
        external_id(7) + '","event":"channel_live"',  # the raw body as received
        "(first seen) -> live",
        f"{LIVE_RULE} -> ops (json://hook:****@127.0.0.1",
        "sent, 1 attempt(s)",
        "1. ",
    ):
        assert expected in page, (expected, page)
    for secret in SECRETS:
        assert secret not in page
    assert "x-360dialog-signature" not in page

    as_json = hub_receiver("events", "show", external_id(7), "--json", database_url=database_url)
    detail = json.loads(as_json.stdout)
    assert detail["id"] == event_id
    assert [a["outcome"] for a in detail["deliveries"][0]["attempt_log"]] == ["sent"]

    missing = hub_receiver("events", "show", "no-such-id", database_url=database_url)
    assert missing.returncode == 1
    assert "no event 'no-such-id'" in missing.stderr
    assert "Traceback" not in missing.stderr


async def test_events_list_filters_searches_and_pages_from_the_cli(
    sqlite_app: RunningApp, sink: Sink
) -> None:
    url = sqlite_app.services.settings.database_url
    ids = [await post_webhook(sqlite_app, channel_live(n)) for n in range(3)]
    await settle(sqlite_app)

    table = hub_receiver("events", "list", database_url=url)
    assert table.returncode == 0, table.stderr
    header, newest = table.stdout.splitlines()[:2]
    assert "360DIALOG ID" in header
    assert "DEDUP KEY" in header
    assert external_id(2) in newest

    def listed(*args: str) -> list[int]:
        result = hub_receiver("events", "list", "--json", *args, database_url=url)
        assert result.returncode == 0, result.stderr
        return [e["id"] for e in json.loads(result.stdout)]

    assert listed("--search", external_id(1)) == [ids[1]]
    assert listed("--search", "+4915112345678", "--since", "2h") == ids[::-1]
    assert listed("--type", "client_created") == []
    assert listed("--channel", "kJ2mQ8CH", "--state", "processed", "--limit", "2") == [
        ids[2],
        ids[1],
    ]
    assert listed("--limit", "2", "--before", str(ids[1])) == [ids[0]]
    assert listed("--limit", "1", "--offset", "1") == [ids[1]]
    as_json = hub_receiver("events", "list", "--json", "--limit", "1", database_url=url)
    [item] = json.loads(as_json.stdout)
    assert item["external_id"] == external_id(2)
    assert item["dedup_key"] == f"wh:id:channel_live:{external_id(2)}"

    for bad in (
        ("--state", "bogus"),
        ("--since", "yesterday"),
        ("--limit", "-1"),
        ("--before", "99999999999999999999999"),
    ):
        result = hub_receiver("events", "list", *bad, database_url=url)
        assert result.returncode == 2, bad
        assert "Traceback" not in result.stderr, bad
        assert result.stderr.strip(), bad


async def test_replay_names_360dialogs_id_and_the_dedup_key(
    sqlite_app: RunningApp, sink: Sink
) -> None:
    event_id = await post_webhook(sqlite_app, channel_live(5), secret=WEBHOOK_SECRET)
    await settle(sqlite_app)

    report = await replay(sqlite_app.services, event_ids=[event_id], dry_run=True, force=False)

    assert f"[360dialog id {external_id(5)}]" in report.format()
    [item] = report.to_dict()["events"]
    assert item["external_id"] == external_id(5)
    assert item["dedup_key"] == f"wh:id:channel_live:{external_id(5)}"
