"""The built-in templates render for every known event, for the team and the client."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from receiver.messages import Renderer, build_context
from receiver.pipeline.subject import preview_subject
from receiver.routing.events import KNOWN_EVENTS
from receiver.routing.ruleset import Audience
from tests.routing.support import NOW

from .support import sample

SAMPLE_FOR = {
    "client_created": "client_created",
    "channel_created": "channel_created",
    "account_violation": "account_violation",
    "account_restriction": "account_violation",
}
JARGON = ("hub_status", "WABA", "waba", "account_mode", "None", "channel_", "client_id", "{{", "{%")


def context_for_event(
    event: str, *, status_change: tuple[str | None, str] | None = None
) -> dict[str, Any]:
    body = copy.deepcopy(sample(SAMPLE_FOR.get(event, "channel_live")))
    body["event"] = event
    s = preview_subject(json.dumps(body), now=NOW, status_change=status_change)
    return build_context(s, rule="r", correlation_id="corr-1")


@pytest.mark.parametrize("audience", ["ops", "client"])
@pytest.mark.parametrize("event", [*KNOWN_EVENTS, "something_new"])
def test_every_event_renders_without_error(event: str, audience: Audience) -> None:
    rendered = Renderer(partner_id="PA1").render(
        template=event, title=None, body=None, audience=audience, context=context_for_event(event)
    )
    assert rendered.error is None
    assert rendered.title.strip() and rendered.body.strip()
    assert "+4915112345678" in rendered.title + rendered.body or event == "client_created"
    if audience == "client":
        assert not any(word in rendered.title + rendered.body for word in JARGON), rendered
        assert rendered.body.startswith("Hello ")
        assert rendered.body.endswith("Best regards,\nYour WhatsApp Business team")
    else:
        assert len(rendered.body.splitlines()) <= 12


@pytest.mark.parametrize("audience", ["ops", "client"])
@pytest.mark.parametrize(
    "change",
    [(None, "draft"), ("draft", "live"), ("live", "pending_deletion"), ("live", "weird_new")],
)
def test_status_change_renders_for_both_audiences(
    change: tuple[str | None, str], audience: Audience
) -> None:
    context = context_for_event("channel_running", status_change=change)
    rendered = Renderer().render(
        template="status_change", title=None, body=None, audience=audience, context=context
    )
    assert rendered.error is None
    if audience == "ops":
        assert f"Status: {change[0] or 'new'} → {change[1]}" in rendered.body
    else:
        assert "pending_deletion" not in rendered.body


def test_ops_messages_link_to_the_partner_hub() -> None:
    rendered = Renderer(partner_id="PA 1").render(
        template="channel_live",
        title=None,
        body=None,
        audience="ops",
        context=context_for_event("channel_live"),
    )
    assert "Partner Hub: https://hub.360dialog.com/dashboard/app/PA%201" in rendered.body


def test_without_a_partner_id_there_is_no_hub_link() -> None:
    rendered = Renderer().render(
        template="channel_live",
        title=None,
        body=None,
        audience="ops",
        context=context_for_event("channel_live"),
    )
    assert rendered.error is None
    assert "Partner Hub" not in rendered.body


def test_events_without_enrichment_or_data_still_render() -> None:
    s = preview_subject(json.dumps({"event": "channel_live"}), now=NOW)
    context = build_context(s, rule="r", enriched=False)
    for audience in ("ops", "client"):
        rendered = Renderer().render(
            template="channel_live", title=None, body=None, audience=audience, context=context
        )
        assert rendered.error is None, rendered.error
    ops = Renderer().render(
        template="channel_live", title=None, body=None, audience="ops", context=context
    )
    assert "Note: no Partner API details" in ops.body  # why is unknown here: no guess


def test_the_client_email_reads_as_plain_language() -> None:
    rendered = Renderer(sender_name="Acme Agency").render(
        template="channel_live",
        title=None,
        body=None,
        audience="client",
        context=context_for_event("channel_live"),
    )
    assert rendered.title == "+4915112345678 is live"
    assert rendered.body == (
        "Hello Jana Beispiel,\n\n"
        "good news: +4915112345678 (Acme Bakery) is now live on WhatsApp.\n\n"
        "You can start sending and receiving messages right away.\n\n"
        "If you have any questions, just reply to this email.\n\n"
        "Best regards,\nAcme Agency"
    )
