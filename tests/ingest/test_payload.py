"""Tolerant parsing of partner webhook bodies and the dedup key (360dialog.md §1)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from receiver.ingest.payload import MAX_FIELD, ParsedEvent, parse_event, webhook_dedup_key
from tests.support.samples import sample

CHANNEL = "kJ2mQ8CH"
CLIENT = "Vb7xR2CL"
PHONE = "+4915112345678"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(sample(name))
    return document


def key_of(body: dict[str, Any]) -> str:
    return webhook_dedup_key(body, parse_event(body), json.dumps(body).encode())


@pytest.mark.parametrize(
    ("name", "event_type", "channel_id", "client_id", "phone_number"),
    [
        ("partner_webhook.channel_created.json", "channel_created", CHANNEL, CLIENT, PHONE),
        ("partner_webhook.channel_live.json", "channel_live", CHANNEL, CLIENT, PHONE),
        ("partner_webhook.account_violation.json", "account_violation", CHANNEL, CLIENT, PHONE),
        ("partner_webhook.client_created.json", "client_created", None, CLIENT, None),
    ],
)
def test_it_reads_each_shared_sample(
    name: str,
    event_type: str,
    channel_id: str | None,
    client_id: str,
    phone_number: str | None,
) -> None:
    parsed = parse_event(load(name))
    assert parsed.event_type == event_type
    assert parsed.known is True
    assert parsed.channel_id == channel_id
    assert parsed.client_id == client_id
    assert parsed.phone_number == phone_number
    assert parsed.delivery_id == load(name)["id"]


def test_it_reads_the_nested_fields_of_a_channel_event() -> None:
    parsed = parse_event(load("partner_webhook.account_violation.json"))
    assert parsed.phone_name == "Acme Bakery"
    assert parsed.status == "running"
    assert parsed.account_mode == "live"
    assert parsed.waba_status == "account_violation"
    assert parsed.fb_account_status == "verified"
    assert parsed.violation_type == "SCAM"


def test_it_reads_the_dates_of_a_live_channel() -> None:
    parsed = parse_event(load("partner_webhook.channel_live.json"))
    assert parsed.created_at == "2026-03-02T09:14:07Z"
    assert parsed.billing_started_at == "2026-03-02T10:03:55Z"


def test_it_finds_every_field_at_the_top_level() -> None:
    parsed = parse_event(
        {
            "event": "account_violation",
            "channel_id": CHANNEL,
            "client_id": CLIENT,
            "phone_number": PHONE,
            "phone_name": "Acme Bakery",
            "status": "running",
            "account_mode": "live",
            "fb_account_status": "verified",
            "violation_type": "SCAM",
            "created_at": "2026-03-02T09:14:07Z",
            "billing_started_at": "2026-03-02T10:03:55Z",
        }
    )
    assert parsed == ParsedEvent(
        event_type="account_violation",
        known=True,
        channel_id=CHANNEL,
        client_id=CLIENT,
        phone_number=PHONE,
        phone_name="Acme Bakery",
        status="running",
        account_mode="live",
        fb_account_status="verified",
        violation_type="SCAM",
        created_at="2026-03-02T09:14:07Z",
        billing_started_at="2026-03-02T10:03:55Z",
    )


def test_it_finds_setup_info_and_waba_account_at_the_top_level() -> None:
    parsed = parse_event(
        {
            "event": "channel_live",
            "channel_id": CHANNEL,
            "setup_info": {"phone_number": PHONE, "phone_name": "Acme Bakery"},
            "waba_account": {"client_id": CLIENT, "status": "approved"},
        }
    )
    assert parsed.phone_number == PHONE
    assert parsed.phone_name == "Acme Bakery"
    assert parsed.client_id == CLIENT
    assert parsed.waba_status == "approved"


def test_it_takes_the_client_from_a_nested_client_object_or_a_bare_client_string() -> None:
    nested = parse_event(
        {"event": "channel_live", "data": {"id": CHANNEL, "client": {"id": CLIENT}}}
    )
    assert nested.client_id == CLIENT
    bare = parse_event({"event": "channel_live", "channel_id": CHANNEL, "client": CLIENT})
    assert bare.client_id == CLIENT


def test_the_top_level_wins_over_data() -> None:
    parsed = parse_event(
        {"event": "channel_live", "phone_number": "+1555", "data": {"phone_number": PHONE}}
    )
    assert parsed.phone_number == "+1555"


def test_a_client_event_does_not_take_the_client_id_for_a_channel_id() -> None:
    parsed = parse_event({"event": "client_created", "data": {"id": CLIENT}})
    assert parsed.channel_id is None
    assert parsed.client_id == CLIENT


def test_it_reads_the_event_type_case_insensitively_and_from_type() -> None:
    assert parse_event({"event": " Channel_Live "}).event_type == "channel_live"
    assert parse_event({"event": "Channel_Live"}).known is True
    assert parse_event({"type": "channel_live"}).event_type == "channel_live"


def test_a_body_with_no_fields_is_an_unknown_event() -> None:
    assert parse_event({}) == ParsedEvent(event_type="unknown", known=False)


def test_missing_fields_are_absent_not_errors() -> None:
    parsed = parse_event({"event": "channel_live"})
    assert parsed == ParsedEvent(event_type="channel_live", known=True)


def test_an_unknown_event_keeps_its_name_and_is_flagged_unknown() -> None:
    parsed = parse_event({"event": "channel_teleported", "data": {"id": CHANNEL}})
    assert parsed.event_type == "channel_teleported"
    assert parsed.known is False
    assert parsed.channel_id == CHANNEL


@pytest.mark.parametrize(
    "body",
    [
        {"event": None},
        {"event": ["channel_live"]},
        {"event": {"name": "channel_live"}},
        {"event": True},
        {"event": ""},
        {"event": "   "},
    ],
    ids=["null", "list", "object", "bool", "empty", "blank"],
)
def test_an_event_name_that_is_not_text_makes_an_unknown_event(body: dict[str, Any]) -> None:
    parsed = parse_event(body)
    assert (parsed.event_type, parsed.known) == ("unknown", False)


def test_fields_of_the_wrong_type_are_tolerated() -> None:
    parsed = parse_event(
        {
            "event": "channel_live",
            "data": ["not", "an", "object"],
            "setup_info": "not an object",
            "waba_account": 7,
            "client": None,
            "channel_id": {"id": CHANNEL},
            "client_id": [CLIENT],
            "phone_number": 4915112345678,
            "status": True,
            "account_mode": 1.5,
        }
    )
    assert parsed.channel_id is None
    assert parsed.client_id is None
    assert parsed.phone_number == "4915112345678"  # a number is read as its digits
    assert parsed.status is None  # a boolean is not a status
    assert parsed.account_mode == "1.5"


def test_nul_characters_are_stripped_from_every_field() -> None:
    body = orjson.loads(
        b'{"event": "channel_\\u0000live", "data": {"id": "kJ2m\\u0000Q8CH",'
        b' "client_id": "\\u0000", "setup_info": {"phone_number": "+49\\u0000151"}}}'
    )
    parsed = parse_event(body)
    assert parsed.event_type == "channel_live"
    assert parsed.channel_id == CHANNEL
    assert parsed.client_id is None
    assert parsed.phone_number == "+49151"
    assert "\x00" not in orjson.dumps(parsed.model_dump()).decode()


def test_a_huge_field_is_cut_to_a_bounded_length() -> None:
    parsed = parse_event({"event": "channel_live", "status": "x" * 10_000})
    assert parsed.status == "x" * MAX_FIELD


# --- the dedup key ---------------------------------------------------------------------------


def test_the_same_body_formatted_differently_has_the_same_key() -> None:
    body = {"event": "channel_live", "data": {"b": 1, "a": [1, 2], "c": {"y": None, "x": "z"}}}
    reordered = json.loads(
        '{"data": {"c": {"x": "z", "y": null}, "a": [1, 2], "b": 1},   "event": "channel_live"}'
    )
    spaced = json.loads(json.dumps(body, indent=4))
    assert key_of(body) == key_of(reordered) == key_of(spaced)
    assert key_of(body).startswith("wh:body:")


def test_a_body_with_a_top_level_id_is_keyed_by_that_id() -> None:
    body = load("partner_webhook.channel_live.json")
    assert key_of(body) == f"wh:id:channel_live:{body['id']}"
    changed = {**body, "data": {**body["data"], "status": "ready"}}
    assert key_of(changed) == key_of(body)


def test_the_same_id_on_two_event_types_makes_two_keys() -> None:
    assert key_of({"id": "1", "event": "channel_live"}) != key_of(
        {"id": "1", "event": "channel_ready"}
    )


def test_different_content_makes_a_different_key() -> None:
    base = {"event": "channel_live", "data": {"id": CHANNEL, "status": "running"}}
    other = {"event": "channel_live", "data": {"id": CHANNEL, "status": "ready"}}
    assert key_of(base) != key_of(other)
    assert key_of(base) != key_of({**base, "extra": None})


def test_every_key_fits_the_column() -> None:
    assert len(key_of({"id": "x" * 1000, "event": "y" * 1000})) <= 200
    assert len(key_of({"event": "y" * 1000})) <= 200


@pytest.mark.parametrize("nested", [False, True], ids=["top level", "under data"])
def test_it_reads_the_template_fields_of_a_template_status_event(nested: bool) -> None:
    template = {"template_name": "order_update", "template_status": "APPROVED"}
    body: dict[str, Any] = {"event": "waba_template_status_changed", "data": {"id": CHANNEL}}
    (body["data"] if nested else body).update(template)

    parsed = parse_event(body)

    assert (parsed.template_name, parsed.template_status) == ("order_update", "APPROVED")
