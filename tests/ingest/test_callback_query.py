"""The permission callback query (360dialog.md §2), read the way Starlette hands it over."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from receiver.ingest.callback import (
    MAX_CHANNELS,
    CallbackQueryError,
    PermissionClaim,
    parse_permission_query,
)
from tests.support.samples import sample

CLIENT = "Vb7xR2CL"


def parse(query: str) -> PermissionClaim:
    """Parse a raw query string as the endpoint does (percent-decoded, repeats kept)."""
    values = parse_qs(query, keep_blank_values=True)
    return parse_permission_query(
        client=values.get("client", []),
        channels=values.get("channels", []),
        revoked=values.get("revoked", []),
    )


def samples() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(sample("permission_callback.redirect.json"))
    return found


@pytest.mark.parametrize("index", [0, 1], ids=["granted two", "kept one removed one"])
def test_it_reads_each_shared_sample_url(index: int) -> None:
    example = samples()[index]
    claim = parse(urlsplit(example["url"]).query)
    expected = example["parsed"]
    assert claim == PermissionClaim(
        client_id=expected["client_id"],
        channels=tuple(expected["channels"]),
        revoked=tuple(expected["revoked"]),
    )


@pytest.mark.parametrize("index", [0, 1])
def test_it_reads_each_shared_sample_query(index: int) -> None:
    example = samples()[index]
    query = example["query"]
    claim = parse_permission_query(
        client=[query["client"]],
        channels=[query["channels"]] if "channels" in query else [],
        revoked=[query["revoked"]] if "revoked" in query else [],
    )
    assert claim.channels == tuple(example["parsed"]["channels"])
    assert claim.revoked == tuple(example["parsed"]["revoked"])


@pytest.mark.parametrize(
    "query",
    [
        "client=Vb7xR2CL&channels=[kJ2mQ8CH,zR5wN3CH]",
        "client=Vb7xR2CL&channels=%5BkJ2mQ8CH%2CzR5wN3CH%5D",
        "client=Vb7xR2CL&channels=%5bkJ2mQ8CH,zR5wN3CH%5d",
        "client=Vb7xR2CL&channels=[ kJ2mQ8CH , zR5wN3CH ]",
        "client=Vb7xR2CL&channels=[+kJ2mQ8CH,+zR5wN3CH+]",
        "client=Vb7xR2CL&channels=%5B%20kJ2mQ8CH%2C%20zR5wN3CH%5D",
        "client=Vb7xR2CL&channels=kJ2mQ8CH,zR5wN3CH",
        'client=Vb7xR2CL&channels=["kJ2mQ8CH","zR5wN3CH"]',
        "client=Vb7xR2CL&channels=['kJ2mQ8CH', 'zR5wN3CH']",
        "client=Vb7xR2CL&channels=%5B%22kJ2mQ8CH%22%2C%22zR5wN3CH%22%5D",
        "client=Vb7xR2CL&channels=[kJ2mQ8CH]&channels=[zR5wN3CH]",
        "client=Vb7xR2CL&channels=kJ2mQ8CH&channels=zR5wN3CH&channels=kJ2mQ8CH",
        "client=Vb7xR2CL&channels=[kJ2mQ8CH,,zR5wN3CH,]",
        "client=+Vb7xR2CL+&channels=[kJ2mQ8CH,zR5wN3CH]",
        "client=Vb7xR2CL&client=Vb7xR2CL&channels=[kJ2mQ8CH,zR5wN3CH]",
    ],
    ids=[
        "raw brackets",
        "percent-encoded brackets and comma",
        "lower-case percent escapes",
        "spaces",
        "plus-encoded spaces",
        "percent-encoded spaces",
        "bare comma list",
        "double-quoted ids",
        "single-quoted ids",
        "percent-encoded quotes",
        "repeated parameter",
        "repeated bare ids, duplicate dropped",
        "empty items",
        "spaces around the client",
        "the same client twice",
    ],
)
def test_it_reads_every_plausible_spelling_of_two_channels(query: str) -> None:
    assert parse(query) == PermissionClaim(
        client_id=CLIENT, channels=("kJ2mQ8CH", "zR5wN3CH"), revoked=()
    )


def test_it_reads_revoked_channels_alone() -> None:
    assert parse("client=Vb7xR2CL&revoked=%5BzR5wN3CH%5D") == PermissionClaim(
        client_id=CLIENT, channels=(), revoked=("zR5wN3CH",)
    )


@pytest.mark.parametrize(
    "query",
    [
        "client=Vb7xR2CL&channels=[]",
        "client=Vb7xR2CL&channels=%5B%5D",
        "client=Vb7xR2CL&channels=[]&revoked=[]",
        "client=Vb7xR2CL&channels=",
        "client=Vb7xR2CL&channels=[ ]",
    ],
)
def test_it_reads_empty_lists_as_no_channels(query: str) -> None:
    assert parse(query) == PermissionClaim(client_id=CLIENT, channels=(), revoked=())


def test_it_keeps_the_order_of_the_channels() -> None:
    assert parse("client=Vb7xR2CL&channels=[c3CH,a1CH,b2CH]").channels == ("c3CH", "a1CH", "b2CH")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("channels=[kJ2mQ8CH]", "missing the 'client'"),
        ("client=&channels=[kJ2mQ8CH]", "missing the 'client'"),
        ("client=Vb7xR2CL&client=Xx9yZ8CL&channels=[kJ2mQ8CH]", "more than one client"),
        ("client=Vb7xR2CL", "no channels"),
        ("client=<script>&channels=[kJ2mQ8CH]", "'client' is not a client id"),
        ("client=Vb7xR2CL&channels=[kJ2mQ8CH", "unbalanced brackets"),
        ("client=Vb7xR2CL&channels=kJ2mQ8CH]", "unbalanced brackets"),
        ("client=Vb7xR2CL&channels=[[kJ2mQ8CH]]", "not a channel id"),
        ("client=Vb7xR2CL&channels=[kJ2mQ8CH;zR5wN3CH]", "not a channel id"),
        ("client=Vb7xR2CL&channels=[kJ2m Q8CH]", "not a channel id"),
        ("client=Vb7xR2CL&channels={kJ2mQ8CH}", "not a channel id"),
        ("client=Vb7xR2CL&channels=[" + "x" * 65 + "]", "not a channel id"),
        ("client=Vb7xR2CL&revoked=[../../etc]", "'revoked' contains"),
    ],
)
def test_it_refuses_a_query_it_cannot_read(query: str, message: str) -> None:
    with pytest.raises(CallbackQueryError, match=message.replace("[", r"\[")):
        parse(query)


def test_it_refuses_more_channels_than_it_will_store() -> None:
    many = ",".join(f"c{n}CH" for n in range(MAX_CHANNELS + 1))
    with pytest.raises(CallbackQueryError, match="more than"):
        parse(f"client=Vb7xR2CL&channels=[{many}]")


def test_the_error_is_a_value_error_with_a_sentence_for_a_person() -> None:
    with pytest.raises(ValueError, match="client") as caught:
        parse("channels=[kJ2mQ8CH]")
    assert isinstance(caught.value, CallbackQueryError)
