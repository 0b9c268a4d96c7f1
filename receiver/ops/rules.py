"""The loaded routing rules for people to read, and reloading them (admin API, SIGHUP).

Targets are shown by name with Apprise's privacy form of their URL only. A reload builds
the new rules completely before swapping them in; on a RulesError the running rules stay.
A reload is per process: each web process and each worker holds its own rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receiver.messages.context import build_context
from receiver.notify import apprise as delivery
from receiver.partner.facts import channel_facts
from receiver.pipeline.subject import preview_status_why, preview_subject
from receiver.routing.errors import RulesError
from receiver.routing.explain import Explanation, explain
from receiver.routing.rules_state import LoadedRules, ReloadAttempt
from receiver.services import Services
from receiver.settings import Settings
from receiver.status import derive_status

log = logging.getLogger("receiver.ops.rules")


def rules_view(loaded: LoadedRules, last_reload: ReloadAttempt | None = None) -> dict[str, Any]:
    """The current rules as JSON: names, files, lines, targets by name (masked), digest, and
    this process's last reload attempt (None before the first) with the problems that made
    it keep the running rules."""
    rules = loaded.rules
    return {
        "digest": rules.source.digest,
        "loaded_at": loaded.loaded_at.isoformat(),
        "last_reload": (
            {
                "at": last_reload.at.isoformat(),
                "ok": not last_reload.problems,
                "problems": [problem.as_dict() for problem in last_reload.problems],
            }
            if last_reload is not None
            else None
        ),
        "files": [{"path": f.path, "sha256": f.sha256} for f in rules.source.files],
        "targets": [
            {
                "name": target.name,
                "file": target.file,
                "line": target.line,
                "configured": target.configured,
                "url": delivery.mask(target.url) if target.configured else None,
                "fallback": target.fallback,
                "failing_after": target.failing_after,
            }
            for target in rules.targets.values()
        ],
        "rules": [
            {
                "name": rule.name,
                "description": rule.description,
                "enabled": rule.enabled,
                "file": rule.file,
                "line": rule.line,
                "events": sorted(rule.events) if rule.events is not None else "*",
                "not_events": sorted(rule.not_events),
                "status": (
                    {
                        "from": sorted(s or "none" for s in rule.status_from)
                        if rule.status_from is not None
                        else "*",
                        "to": sorted(rule.status_to) if rule.status_to is not None else "*",
                    }
                    if rule.status_required
                    else None
                ),
                "targets": list(rule.targets),
                "template": rule.template,
                "throttle_seconds": rule.throttle_seconds,
                "stop": rule.stop,
            }
            for rule in rules.rules
        ],
        "warnings": [problem.as_dict() for problem in rules.warnings],
    }


@dataclass(frozen=True)
class EventTest:
    """What `rules test` (and the dashboard's rules page) show for one pasted event."""

    explanation: Explanation
    # Without a simulated status change: what the body's channel reads as, to suggest one.
    reads_as: tuple[str, str] | None


def test_event(
    loaded: LoadedRules,
    settings: Settings,
    text: str,
    *,
    status_change: tuple[str | None, str] | None,
    now: datetime,
) -> EventTest:
    """Which rules fire for the webhook body `text` and the messages they render, built by
    the code production routes with (the same parser, row and subject); raise ValueError
    when `text` is not a JSON object. The Partner API is not called: with it configured,
    the payload stands in for its answer, as messages would say."""
    subject = preview_subject(text, now=now, status_change=status_change)
    enrichment = "enriched" if settings.partner_api_configured else "not_configured"
    explanation = explain(
        loaded.rules,
        subject,
        loaded.renderer,
        build_context=lambda subject, rule: build_context(
            subject,
            rule=rule,
            status_why=preview_status_why(subject),
            enriched=enrichment == "enriched",
            enrichment=enrichment,
        ),
    )
    reads_as = None
    if status_change is None and subject.channel is not None:
        derived = derive_status(channel_facts(subject.channel))
        reads_as = (derived.status, derived.why)
    return EventTest(explanation=explanation, reads_as=reads_as)


def parse_status_change(text: str) -> tuple[str | None, str] | None:
    """`--status` as `rules test` takes it: `NEW` (a first sighting) or `OLD:NEW`."""
    if not text.strip():
        return None
    before, _, after = text.strip().rpartition(":")
    return (before or None, after)


def client_email_problem(settings: Settings) -> str | None:
    """Why CLIENT_EMAIL_URL cannot email a client (naming the variable, not its value)."""
    if settings.client_email_url is None:
        return None
    problem = delivery.client_email_url_problem(settings.client_email_url.get_secret_value())
    return f"CLIENT_EMAIL_URL: {problem}" if problem else None


async def reload_rules(services: Services, *, requested_by: str) -> LoadedRules:
    """Load RULES_PATH again and swap it in; raise RulesError (old rules kept) when invalid."""
    holder = services.rules
    now = services.clock()
    # Reading and compiling YAML and templates is blocking file work: keep it off the loop.
    try:
        loaded = await asyncio.to_thread(holder.reload, now=now)
    except RulesError as exc:
        log.warning(
            "rules reload refused, keeping the running rules (%d problems): %s",
            len(exc.problems),
            "; ".join(str(p) for p in exc.problems),
            extra={"by": requested_by},
        )
        raise
    return loaded


def install_reload_signal(services: Services) -> Callable[[], None]:
    """Reload the rules on SIGHUP (main thread only); return the function that uninstalls it."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return lambda: None
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def reload_logged() -> None:
        try:
            await reload_rules(services, requested_by="SIGHUP")
        except RulesError:
            pass  # logged with every problem by reload_rules(); the old rules keep running
        except Exception:
            log.exception("rules reload on SIGHUP failed; the old rules keep running")

    def on_hangup() -> None:
        task = loop.create_task(reload_logged(), name="rules-reload")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    except (NotImplementedError, RuntimeError, ValueError):  # not a Unix loop, or not allowed
        log.info("SIGHUP rules reload not available in this process")
        return lambda: None

    def uninstall() -> None:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGHUP)

    return uninstall
