from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from receiver.partner.facts import ChannelFacts, ClientFacts, channel_facts, client_facts
from tests.support.samples import sample_json as load_fixture


def api_channel() -> dict[str, Any]:
    channel: dict[str, Any] = load_fixture("partner_api.channels_filter.response.json")[
        "partner_channels"
    ][0]
    return channel


def test_it_reads_every_fact_from_the_api_sample() -> None:
    facts = channel_facts(api_channel())

    assert facts == ChannelFacts(
        id="kJ2mQ8CH",
        client_id="Vb7xR2CL",
        phone_number="+4915112345678",
        phone_name="Acme Bakery",
        status="running",
        account_mode="live",
        hub_status=None,
        app_id="204711",
        app_id_reported=True,
        terminated_at=None,
        modified_at=datetime(2026, 3, 2, 10, 3, 55, tzinfo=UTC),
        waba_status="approved",
        fb_account_status="verified",
        obo_status="approved",
        hosting_platform_type=None,
        version_hint="embedded",
    )


def test_it_reads_a_webhook_data_object_the_same_way() -> None:
    data = load_fixture("partner_webhook.account_violation.json")["data"]

    facts = channel_facts(data)

    assert (facts.id, facts.client_id, facts.phone_number) == (
        "kJ2mQ8CH",
        "Vb7xR2CL",
        "+4915112345678",
    )
    assert facts.waba_status == "account_violation"
    assert (facts.app_id, facts.app_id_reported) == (None, False)


def test_an_explicitly_empty_app_id_is_reported_but_absent() -> None:
    data = load_fixture("partner_webhook.channel_created.json")["data"]

    facts = channel_facts(data)

    assert (facts.app_id, facts.app_id_reported) == (None, True)
    assert facts.obo_status == "submitted"


def test_it_finds_fields_at_the_top_level_too() -> None:
    facts = channel_facts(
        {
            "id": "kJ2mQ8CH",
            "client": {"id": "Vb7xR2CL"},
            "phone_number": "+4915112345678",
            "phone_name": "Acme Bakery",
            "fb_account_status": "pending",
            "app_id": "204711",
            "hub_status": "pending",
            "terminated_at": "2026-04-01T00:00:00+02:00",
        }
    )

    assert facts.client_id == "Vb7xR2CL"
    assert (facts.phone_number, facts.phone_name) == ("+4915112345678", "Acme Bakery")
    assert facts.fb_account_status == "pending"
    assert facts.app_id == "204711"
    assert facts.terminated_at == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)
    assert facts.version_hint == "classic"


def test_top_level_app_id_wins_over_integration_and_empty_strings_are_absent() -> None:
    assert channel_facts({"app_id": "1", "integration": {"app_id": "2"}}).app_id == "1"
    assert channel_facts({"app_id": "", "integration": {"app_id": "2"}}).app_id == "2"
    assert channel_facts({"app_id": "  ", "integration": {"app_id": None}}).app_id is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"hosting_platform_type": "CLOUD_API"}, "CLOUD_API"),
        ({"hostingPlatformType": "ON_PREMISE"}, "ON_PREMISE"),
        ({"platform_type": "cloud"}, "cloud"),
        ({"setup_info": {"hosting_platform_type": "CLOUD_API"}}, "CLOUD_API"),
        ({}, None),
    ],
)
def test_it_looks_for_the_hosting_platform_type_under_every_known_name(
    raw: dict[str, Any], expected: str | None
) -> None:
    assert channel_facts(raw).hosting_platform_type == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Inferred: account_mode only exists for Embedded Signup, done/pending only for Classic.
        ({"account_mode": "sandbox"}, "embedded"),
        ({"hub_status": "pending", "account_mode": "live"}, "classic"),
        ({"status": "ready"}, None),
        ({}, None),
        # An explicit marker wins over the inference, read tolerantly wherever it may live.
        ({"signup_version": 1, "account_mode": "live"}, "classic"),
        ({"version": "1", "account_mode": "sandbox"}, "classic"),
        ({"version": 1.0}, "classic"),
        ({"channel_version": "V1"}, "classic"),
        ({"signup_type": "classic_signup", "account_mode": "live"}, "classic"),
        ({"setup_info": {"version": "version 1"}}, "classic"),
        ({"signup_version": 2}, "embedded"),
        ({"version": "v2", "hub_status": "done"}, "embedded"),
        ({"signup_type": "Embedded Signup"}, "embedded"),
        ({"setup_info": {"signup_version": "2.0"}}, "embedded"),
        # Anything else is no version marker: a revision counter, a date, a wrong type.
        ({"version": 7, "account_mode": "live"}, "embedded"),
        ({"version": "2026-03-02"}, None),
        ({"version": True, "signup_version": [2]}, None),
        ({"version": "", "signup_version": None}, None),
    ],
)
def test_it_tells_classic_from_embedded_signup(raw: dict[str, Any], expected: str | None) -> None:
    assert channel_facts(raw).version_hint == expected


@pytest.mark.parametrize(
    "raw",
    [None, 42, "kJ2mQ8CH", [], {"id": 3.5, "setup_info": "oops", "waba_account": [1]}],
)
def test_odd_input_never_raises(raw: object) -> None:
    facts = channel_facts(raw)

    assert facts.phone_number is None
    assert facts.waba_status is None


def test_wrong_types_and_bad_timestamps_become_none() -> None:
    facts = channel_facts(
        {
            "id": 123,
            "status": True,
            "modified_at": "yesterday",
            "terminated_at": 17,
            "waba_account": {"on_behalf_of_business_info": "approved"},
            "client": "Vb7xR2CL",
        }
    )

    assert facts.id == "123"
    assert facts.status is None
    assert (facts.modified_at, facts.terminated_at) == (None, None)
    assert facts.obo_status is None
    assert facts.client_id is None


def test_client_facts_from_a_clients_list_item() -> None:
    data = load_fixture("partner_webhook.client_created.json")["data"]

    assert client_facts(data) == ClientFacts(
        id="Vb7xR2CL",
        name="Jana Beispiel",
        organisation="Acme Bakery GmbH",
        contact_email="ops@acme-bakery.example",
        contact_name="Jana Beispiel",
        language="de",
        partner_payload="crm-account-4711",
        status="active",
    )


def test_client_facts_from_a_channels_embedded_client() -> None:
    facts = client_facts(api_channel()["client"])

    assert (facts.id, facts.contact_email, facts.organisation) == (
        "Vb7xR2CL",
        "ops@acme-bakery.example",
        None,
    )


def test_client_facts_tolerate_odd_input() -> None:
    assert client_facts(None) == ClientFacts()
    assert client_facts({"contact_info": "x", "name": 7}).contact_email is None
