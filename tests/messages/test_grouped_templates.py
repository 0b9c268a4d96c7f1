"""Every built-in template has a grouped form: a group's message lists its members."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from receiver.messages import Renderer, build_context
from receiver.messages.render import DEFAULT_TEMPLATES
from receiver.pipeline.route import member_context
from receiver.pipeline.subject import preview_subject
from receiver.routing.ruleset import Audience
from tests.routing.support import NOW

from .support import sample

PHONES = ("+4915100000001", "+4915100000002", "+4915100000003")
# Messages the receiver composes itself from many things (a mute window's catch-up, a
# failed target's fallback notices): never one rule's match, so never a group's member.
COMPOSED = {"catch_up", "fallback", "target_failing", "target_recovered"}


def built_in(audience: str) -> list[str]:
    folder = Path(DEFAULT_TEMPLATES) / audience
    return sorted(p.stem for p in folder.glob("*.j2") if not p.name.startswith("_"))


def test_every_rule_template_extends_a_base_with_the_grouped_form() -> None:
    for audience in ("ops", "client"):
        for name in built_in(audience):
            source = (Path(DEFAULT_TEMPLATES) / audience / f"{name}.j2").read_text()
            assert name in COMPOSED or f'{{% extends "{audience}/_base.j2" %}}' in source, name


def member(event: str, phone: str) -> dict[str, Any]:
    body = copy.deepcopy(sample("channel_live"))
    body["event"] = event
    body["data"]["setup_info"]["phone_number"] = phone
    subject = preview_subject(json.dumps(body), now=NOW, status_change=("ready", "live"))
    return member_context(build_context(subject, rule="r", correlation_id=f"corr-{phone}"))


def grouped(event: str, count: int) -> dict[str, Any]:
    events = [member(event, phone) for phone in PHONES[:count]]
    key = {"client.id": "Vb7xR2CL"}
    group = {"key": key, "label": "Fietsenwinkel Noord", "events": events, "count": count}
    return {**events[0], "group": {**group, "rule": "r", "follow_up": False}}


CASES = [(a, name) for a in ("ops", "client") for name in built_in(a) if name not in COMPOSED]


@pytest.mark.parametrize(("audience", "template"), CASES)
def test_every_built_in_template_lists_a_groups_members(audience: Audience, template: str) -> None:
    rendered = Renderer(partner_id="PA1").render(
        template=template,
        title=None,
        body=None,
        audience=audience,
        context=grouped(template, 3),
    )
    assert rendered.error is None, rendered.error
    assert "3" in rendered.title
    for phone in PHONES:
        assert phone in rendered.body, rendered.body


@pytest.mark.parametrize("audience", ["ops", "client"])
def test_a_group_of_one_reads_as_the_plain_message(audience: Audience) -> None:
    renderer = Renderer(partner_id="PA1")
    one = grouped("channel_live", 1)
    alone = {k: v for k, v in one.items() if k != "group"}
    as_group = renderer.render(
        template="channel_live", title=None, body=None, audience=audience, context=one
    )
    plain = renderer.render(
        template="channel_live", title=None, body=None, audience=audience, context=alone
    )
    assert (as_group.title, as_group.body) == (plain.title, plain.body)


def test_the_teams_group_message_names_the_client_and_every_number() -> None:
    rendered = Renderer(partner_id="PA1").render(
        template="channel_live",
        title=None,
        body=None,
        audience="ops",
        context=grouped("channel_live", 3),
    )
    assert rendered.title == "3× Number is live: Fietsenwinkel Noord"
    assert "- +4915100000002" in rendered.body
    assert "client.id = Vb7xR2CL" in rendered.body
