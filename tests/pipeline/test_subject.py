"""The routing subject of a webhook body, as `rules test` and the pipeline both build it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from receiver.pipeline.subject import preview_subject
from tests.routing.support import NOW, sample_subject
from tests.support.samples import SHIPPED_SAMPLES as SAMPLES


def test_a_webhook_file_becomes_a_subject_with_fields_from_the_envelope() -> None:
    text = (SAMPLES / "partner_webhook.account_violation.json").read_text()
    s = preview_subject(text, now=NOW)
    assert s.event_type == "account_violation"
    assert s.event["phone_number"] == "+4915112345678"
    assert s.event["violation_type"] == "SCAM"
    assert s.event["fb_account_status"] == "verified"
    assert s.event["channel_id"] == "kJ2mQ8CH"
    assert s.event["client_id"] == "Vb7xR2CL"
    assert s.event["source"] == "webhook"
    assert s.channel is not None and s.channel["id"] == "kJ2mQ8CH"
    assert s.client is None


def test_client_created_uses_data_as_the_client() -> None:
    s = sample_subject("client_created")
    assert s.channel is None
    assert s.client is not None and s.client["name"] == "Jana Beispiel"
    assert s.event["client_id"] == "Vb7xR2CL"


def test_fields_are_found_at_the_top_level_too() -> None:
    text = json.dumps(
        {"event": "account_violation", "phone_number": "+1", "violation_type": "SPAM"}
    )
    s = preview_subject(text, now=NOW)
    assert (s.event["phone_number"], s.event["violation_type"]) == ("+1", "SPAM")
    assert s.channel is None


def test_a_template_event_has_the_template_fields_the_parser_reads() -> None:
    # `rules test` once showed `template_name` here while production did not (issue 11):
    # both now take it from the parser, wherever the body puts it.
    text = json.dumps(
        {"event": "waba_template_status_changed", "template_name": "welcome", "data": {}}
    )
    s = preview_subject(text, now=NOW)
    assert s.event["template_name"] == "welcome"
    assert s.event["source"] == "webhook"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_a_value_error(tmp_path: Path, content: str) -> None:
    with pytest.raises(ValueError, match="JSON"):
        preview_subject(content, now=NOW)
