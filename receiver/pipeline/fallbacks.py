"""What an attempt's outcome tells the target's `fallback`, in the transaction recording it.

Three notices, each a delivery row of its own (sent by the ordinary `deliver` job, retried
and recorded like any other), named by a parenthesised rule so they never collide with a
user's rule:

- `(fallback for T)`: a delivery to T died (permanent failure or retries used up). One per
  (event, T, replay round): the unique key of `deliveries` makes a second insert (a job
  retried after its record was written, a stale claim recorded twice) add nothing.
- `(target failing: T)`: T failed `failing_after` attempts in a row; told once per run.
- `(target recovered: T)`: the next success after a run that was announced; told once.

The last two are guarded by conditional updates of `target_health`. The team told is T's own
`fallback`; a target without one is only logged. Notices name targets, never their URLs
(they hold tokens), and an error that echoes the URL has it replaced.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from receiver.db.engine import Session
from receiver.db.store import deliveries, target_health
from receiver.db.tables import Delivery, Event
from receiver.messages.render import Renderer
from receiver.notify import apprise as transport
from receiver.pipeline.route import target_kind
from receiver.routing.ruleset import RuleSet
from receiver.vocabulary import CLIENT_TARGET, DeliveryState

log = logging.getLogger("receiver.fallbacks")

FAILED_STATES = (DeliveryState.FAILED, DeliveryState.DEAD)


def fallback_rule(target: str) -> str:
    return f"(fallback for {target})"


def failing_rule(target: str) -> str:
    return f"(target failing: {target})"


def recovered_rule(target: str) -> str:
    return f"(target recovered: {target})"


def scrub(error: str | None, url: str | None) -> str | None:
    """Return `error` without the target's URL (an error may echo it, tokens and all)."""
    if error is None or not url:
        return error
    return error.replace(url, "<target URL>")


async def after_outcome(
    session: Session,
    *,
    row: Delivery,
    event: Event,
    state: str,
    error: str | None,
    rules: RuleSet,
    renderer: Renderer,
    now: datetime,
) -> list[int]:
    """Count the attempt against the target's health and insert the notices it calls for.

    Return the ids of new pending notice rows, to hand to the queue after the commit.
    """
    target = row.target_name
    if target == CLIENT_TARGET or target not in rules.targets:
        # The built-in `client` is one address per client, not one target; a target removed
        # from the rules since has no fallback to tell.
        return []
    spec = rules.targets[target]
    notices: list[tuple[str, str, dict[str, Any]]] = []
    error = scrub(error, rules.target_url(target))
    failure = {
        "target": target,
        "rule": row.rule_name,
        "error": error,
        "attempts": row.attempts,
        "state": state,
    }
    if state in FAILED_STATES:
        failures = await target_health.count_failure(session, target=target, now=now)
        if state == DeliveryState.DEAD:
            notices.append((fallback_rule(target), "fallback", {"failed": failure}))
        run = await target_health.claim_failing_notice(
            session, target=target, threshold=spec.failing_after, now=now
        )
        if run is not None:
            health = {
                "target": target,
                "failures": failures,
                "threshold": spec.failing_after,
                "since": _iso(run.failing_since),
                "error": error,
            }
            notices.append((failing_rule(target), "target_failing", {"health": health}))
    elif state == DeliveryState.SENT:
        run = await target_health.count_success(session, target=target, now=now)
        if run is not None:
            health = {"target": target, "since": _iso(run.failing_since), "at": _iso(now)}
            notices.append((recovered_rule(target), "target_recovered", {"health": health}))
    if not notices:
        return []
    if spec.fallback is None:
        for rule, _template, _extra in notices:
            log.warning(
                "%s: target %r has no fallback, so nobody is told",
                rule,
                target,
                extra={"target": target},
            )
        return []
    created: list[int] = []
    for rule, template, extra in notices:
        new_id = await _insert_notice(
            session,
            row=row,
            event=event,
            rule=rule,
            to=spec.fallback,
            template=template,
            context={**_event_context(event, row), **extra},
            rules=rules,
            renderer=renderer,
            now=now,
        )
        if new_id is not None:
            created.append(new_id)
    return created


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def _event_context(event: Event, row: Delivery) -> dict[str, Any]:
    return {
        "event": {
            "type": event.event_type,
            "id": event.id,
            "correlation_id": event.correlation_id,
            "received_at": _iso(event.received_at),
            "channel_id": event.channel_id,
            "client_id": event.client_id,
        },
        "message": {"title": row.title, "delivery_id": row.id},
    }


async def _insert_notice(
    session: Session,
    *,
    row: Delivery,
    event: Event,
    rule: str,
    to: str,
    template: str,
    context: dict[str, Any],
    rules: RuleSet,
    renderer: Renderer,
    now: datetime,
) -> int | None:
    """Insert one notice to the fallback `to`; its id when it is new and to be sent."""
    url = rules.target_url(to)
    rendered = renderer.render(
        template=template, title=None, body=None, audience="ops", context=context
    )
    state, reason = DeliveryState.PENDING, None
    if not url:
        state = DeliveryState.SKIPPED
        reason = f"fallback target '{to}' is not configured, so nobody was told"
    values: dict[str, Any] = {
        "event_id": event.id,
        "rule_name": rule,
        "target_name": to,
        "target_kind": target_kind(to, rules),
        "target_display": transport.mask(url) if url else None,
        "client_id": None,
        "state": state,
        "attempts": 0,
        "last_error": reason,
        "title": rendered.title,
        "body": rendered.body,
        "render_error": rendered.error,
        "throttle_key": None,
        "enqueued_at": now if state == DeliveryState.PENDING else None,
        "created_at": now,
        "updated_at": now,
        "replay_round": row.replay_round,
        "forced": False,
    }
    new_id = await deliveries.insert_delivery(session, row=values)
    if new_id is not None:
        log.info("%s: told %r (delivery %d)", rule, to, new_id, extra={"target": row.target_name})
    return new_id if state == DeliveryState.PENDING else None
