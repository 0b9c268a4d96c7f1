"""A broken or hostile template never raises: a plain fallback goes out with the error."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from receiver.messages import Renderer, build_context
from receiver.messages.render import MAX_BODY, MAX_TITLE
from receiver.pipeline.subject import preview_subject
from tests.routing.support import NOW

from .support import context_for, sample


def render_body(
    body: str, *, renderer: Renderer | None = None, name: str = "channel_live"
) -> tuple[str, str | None]:
    rendered = (renderer or Renderer()).render(
        template=None, title="t", body=body, audience="ops", context=context_for(name)
    )
    return rendered.body, rendered.error


def test_an_undefined_variable_gives_the_fallback_and_records_the_error() -> None:
    rendered = Renderer().render(
        template=None,
        title="{{ channel.no_such_field }}",
        body="x",
        audience="ops",
        context=context_for("channel_live", status_change=("draft", "live")),
    )
    assert rendered.error is not None
    assert rendered.error.startswith(
        "UndefinedError: 'dict object' has no attribute 'no_such_field'"
    )
    assert rendered.title == "channel_live: +4915112345678"
    assert rendered.body == (
        "Event: channel_live\nNumber: +4915112345678\nClient: Jana Beispiel\n"
        "Status: draft -> live\nCorrelation id: corr-1\n(plain fallback: the template failed)"
    )


def test_the_client_fallback_is_plain_language() -> None:
    rendered = Renderer().render(
        template=None,
        title=None,
        body="{{ oops(",
        audience="client",
        context=context_for("channel_live"),
    )
    assert rendered.error is not None and rendered.error.startswith("TemplateSyntaxError")
    assert rendered.title == "Update about your WhatsApp number +4915112345678"
    assert "channel_live" not in rendered.body


def test_a_syntax_error_in_a_template_file_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "channel_live.j2").write_text(
        "{% block title %}ok{% endblock %}\n{% block body %}\n{{ broken( }}\n{% endblock %}\n"
    )
    rendered = Renderer(user_templates=tmp_path).render(
        template="channel_live",
        title=None,
        body=None,
        audience="ops",
        context=context_for("channel_live"),
    )
    assert rendered.error is not None
    assert rendered.error.endswith("(ops/channel_live.j2 line 3)")


def test_user_templates_override_the_defaults_and_may_extend_them(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "channel_live.j2").write_text(
        '{% extends "ops/_base.j2" %}{% set headline = "LIVE!" %}'
    )
    renderer = Renderer(user_templates=tmp_path)
    rendered = renderer.render(
        template="channel_live",
        title=None,
        body=None,
        audience="ops",
        context=context_for("channel_live"),
    )
    assert rendered.error is None
    assert rendered.title == "LIVE!: +4915112345678 (Jana Beispiel)"
    assert renderer.has_template("channel_live")
    assert not renderer.has_template("nope")


def test_an_unknown_template_name_uses_generic() -> None:
    rendered = Renderer().render(
        template="brand_new_event",
        title=None,
        body=None,
        audience="ops",
        context=context_for("channel_live"),
    )
    assert rendered.error is None
    assert rendered.title.startswith("Event channel_live")


def test_inline_title_and_body_override_the_template_parts() -> None:
    renderer = Renderer()
    context = context_for("channel_live")
    title_only = renderer.render(
        template="channel_live",
        title="Hi {{ facts.client_name }}",
        body=None,
        audience="ops",
        context=context,
    )
    assert title_only.title == "Hi Jana Beispiel"
    assert title_only.body.startswith("Number is live")


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ event.__class__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{{ 'x'.format_map({}) }}",
        "{% set x = [1] %}{{ x.append(2) }}",
        "{{ lipsum(10**6) }}",
    ],
)
def test_sandbox_escapes_fall_back(body: str) -> None:
    text, error = render_body(body)
    assert error is not None, text
    assert text.endswith("(plain fallback: the template failed)")


@pytest.mark.parametrize(
    "body",
    [
        "{{ 'a' * 10**9 }}",
        "{{ [0] * 10**9 }}",
        "{{ 10 ** 10000000 }}",
        "{{ 'a' * 60000 + 'b' * 60000 }}",
        "{% set a = 'x' * 60000 %}{{ a ~ a }}",
        "{% set a = 'x' * 1000 %}" + "{% set a %}{{a}}{{a}}{{a}}{{a}}{% endset %}" * 12,
        "{{ 'x' | center(10**9) }}",
        "{{ ('y' * 60000) | indent(9000) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%*d' | format(10**9, 1) }}",
        "{{ ('a' * 60000) | list | join('b' * 60000) }}",
        "{{ ('a' * 60000).replace('a', 'bb' * 50) }}",
        "{{ ('a' * 60000) | replace('a', 'bb' * 50) }}",
        "{{ [1] | batch(10**9, 'x') | list }}",
        "{% for i in range(10**6) %}{% endfor %}",
        "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}",
        "{% for c in 'x' * 60000 %}{% for d in 'y' * 60000 %}{% endfor %}{% endfor %}",
        "{% macro m(n) %}{% if n %}{{ m(n-1) }}{{ m(n-1) }}{% endif %}{% endmacro %}{{ m(40) }}",
    ],
)
def test_memory_and_cpu_bombs_fall_back_quickly(body: str) -> None:
    start = time.perf_counter()
    text, error = render_body(body)
    assert error is not None, text[:100]
    assert "SecurityError" in error
    assert time.perf_counter() - start < 2.0


def test_template_syntax_inside_event_data_is_printed_literally() -> None:
    body = sample("channel_live")
    body["data"]["setup_info"]["phone_name"] = "{{ 7*7 }}{% for x in range(3) %}x{% endfor %}"
    context = build_context(preview_subject(json.dumps(body), now=NOW), rule="r")
    for audience in ("ops", "client"):
        rendered = Renderer().render(
            template="channel_live", title=None, body=None, audience=audience, context=context
        )
        assert rendered.error is None
        assert "({{ 7*7 }}{% for x in range(3) %}x{% endfor %})" in rendered.body
        assert "(49" not in rendered.body
        assert "xxx" not in rendered.body


def test_template_syntax_in_data_is_literal_in_the_fallback_too() -> None:
    body = sample("channel_live")
    body["data"]["setup_info"]["phone_number"] = "{{ 7*7 }}"
    context = build_context(preview_subject(json.dumps(body), now=NOW), rule="r")
    rendered = Renderer().render(
        template=None, title=None, body="{{ nope }}", audience="ops", context=context
    )
    assert rendered.error is not None
    assert "Number: {{ 7*7 }}" in rendered.body


def test_long_titles_are_cut_and_long_bodies_truncated_with_a_marker() -> None:
    rendered = Renderer().render(
        template=None,
        title="{{ 'T' * 1000 }}",
        body="{% for i in range(400) %}{{ 'line %03d ' % i ~ 'b' * 60 }}\n{% endfor %}",
        audience="ops",
        context=context_for("channel_live"),
    )
    assert rendered.error is None
    assert len(rendered.title) == MAX_TITLE and rendered.title.endswith("…")
    assert len(rendered.body) == MAX_BODY
    assert rendered.body.endswith("\n… (truncated)")


def test_titles_are_one_line() -> None:
    rendered = Renderer().render(
        template=None,
        title="a\n  b\n",
        body="x",
        audience="ops",
        context=context_for("channel_live"),
    )
    assert rendered.title == "a b"


def test_oversized_template_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "big.j2").write_text("{% block body %}" + "x" * 70_000 + "{% endblock %}")
    rendered = Renderer(user_templates=tmp_path).render(
        template="big", title=None, body=None, audience="ops", context=context_for("channel_live")
    )
    assert rendered.error is not None and "over 64 KiB" in rendered.error


def test_oversized_inline_templates_are_refused() -> None:
    _, error = render_body("x" * 70_000)
    assert error is not None and "size limit" in error


def test_a_template_without_a_body_block_falls_back(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "nobody.j2").write_text("{% block title %}t{% endblock %}")
    rendered = Renderer(user_templates=tmp_path).render(
        template="nobody",
        title=None,
        body=None,
        audience="ops",
        context=context_for("channel_live"),
    )
    assert rendered.error == "TemplateError: template 'nobody' has no body block"


def test_a_garbage_context_still_yields_a_fallback() -> None:
    rendered = Renderer().render(
        template=None, title=None, body="{{ x }}", audience="ops", context={}
    )
    assert rendered.error is not None
    assert rendered.title == "unknown event"
