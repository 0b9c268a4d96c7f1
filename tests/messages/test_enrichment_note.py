"""A message without Partner API details says why: not configured, not found, refused, or
unavailable, the last only when the Partner API could not be reached."""

from __future__ import annotations

import pytest

from receiver.messages import Renderer, build_context
from receiver.messages.context import missing_details
from receiver.partner.client import ErrorKind, PartnerAPIError
from receiver.pipeline.enrich import describe
from tests.routing.support import sample_subject

UNAVAILABLE = "Note: Partner API unavailable; details come from the webhook only."
NOT_CONFIGURED = (
    "Note: Partner API not configured (D360_PARTNER_ID and a key are unset); "
    "details come from the webhook only."
)
NOT_FOUND = (
    "Note: the Partner API does not know this number or client; details come from the webhook only."
)
REFUSED = "Note: the Partner API refused the lookup (Partner API auth (401)"


def refused_error() -> str:
    return describe(PartnerAPIError("no", kind="auth", permanent=True, status_code=401))


def unreachable_error() -> str:
    return describe(PartnerAPIError("down", kind="server", permanent=False, status_code=502))


def ops_body(*, enriched: bool, enrichment: str | None, error: str | None = None) -> str:
    context = build_context(
        sample_subject("channel_live"),
        rule="r",
        enriched=enriched,
        enrichment=enrichment,
        enrichment_error=error,
    )
    rendered = Renderer().render(
        template="channel_live", title=None, body=None, audience="ops", context=context
    )
    assert rendered.error is None
    return rendered.body


@pytest.mark.parametrize(
    ("enriched", "enrichment", "error", "note"),
    [
        (True, "enriched", None, None),
        (True, "enriched", "clients lookup: Partner API auth (403)", None),
        (True, "enriched_late", None, None),
        (False, "not_needed", None, None),
        (False, "not_configured", None, NOT_CONFIGURED),
        (False, "not_found", None, NOT_FOUND),
        (False, "not_enriched", unreachable_error(), UNAVAILABLE),
        (False, "not_enriched", None, UNAVAILABLE),
        (False, "not_enriched", refused_error(), REFUSED),
        # A caller that knows only whether details came (e.g. a replay): no guessed reason.
        (False, None, None, "Note: no Partner API details; details come from the webhook only."),
        (True, None, None, None),
    ],
)
def test_the_team_message_says_why_partner_api_details_are_missing(
    *, enriched: bool, enrichment: str | None, error: str | None, note: str | None
) -> None:
    body = ops_body(enriched=enriched, enrichment=enrichment, error=error)

    notes = [line for line in body.splitlines() if line.startswith("Note:")]
    if note is None:
        assert notes == [], body
    else:
        assert len(notes) == 1, body
        assert notes[0].startswith(note), body
    if enrichment != "not_enriched" or error == refused_error():
        assert "unavailable" not in body


@pytest.mark.parametrize("enrichment", ["not_configured", "not_found", "not_enriched"])
def test_a_client_email_never_talks_about_the_partner_api(enrichment: str) -> None:
    context = build_context(
        sample_subject("channel_live"), rule="r", enriched=False, enrichment=enrichment
    )
    rendered = Renderer().render(
        template="channel_live", title=None, body=None, audience="client", context=context
    )

    assert "Partner API" not in rendered.body
    assert context["event"]["missing_details"] is not None  # there to use in own templates


@pytest.mark.parametrize(
    ("kind", "status", "unavailable"),
    [
        ("timeout", None, True),
        ("connect", None, True),
        ("rate_limited", 429, True),
        ("server", 503, True),
        ("bad_response", 200, True),
        ("auth", 403, False),
        ("client", 404, False),
    ],
)
def test_only_an_unreachable_partner_api_is_called_unavailable(
    kind: ErrorKind, status: int | None, unavailable: bool
) -> None:
    error = describe(PartnerAPIError("x", kind=kind, permanent=not unavailable, status_code=status))

    expected = (
        "Partner API unavailable"
        if unavailable
        else f"the Partner API refused the lookup ({error})"
    )
    assert missing_details("not_enriched", error) == expected
