"""The loaded routing rules and their renderer, swapped atomically on reload.

A reload builds a complete new RuleSet (and renderer) first and only then replaces the old
one; a bad file raises RulesError and the running rules stay as they were.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from receiver.messages.render import Renderer
from receiver.notify import apprise as delivery
from receiver.routing.errors import RuleProblem, RulesError
from receiver.routing.loader import load_rules
from receiver.routing.ruleset import RuleSet
from receiver.settings import Settings, rules_environment

log = logging.getLogger("receiver.rules")


@dataclass(frozen=True)
class LoadedRules:
    rules: RuleSet
    renderer: Renderer
    loaded_at: datetime


def load(settings: Settings, *, now: datetime) -> LoadedRules:
    """Load and validate the rules at RULES_PATH (raises RulesError naming file/line/rule/key)."""
    renderer = Renderer.for_rules(
        Path(settings.rules_path),
        partner_id=settings.d360_partner_id,
        links={"hub": settings.partner_hub_url + "/dashboard/app/{partner_id}"},
    )
    rules = load_rules(
        settings.rules_path,
        env={**rules_environment(), **settings.rules_env},
        validate_target=delivery.validate_target,
        template_exists=renderer.has_template,
    )
    return LoadedRules(rules=rules, renderer=renderer, loaded_at=now)


@dataclass(frozen=True)
class ReloadAttempt:
    """The last reload this process tried: when, and the problems that made it keep the old
    rules (none when it took)."""

    at: datetime
    problems: tuple[RuleProblem, ...]


class RulesHolder:
    def __init__(self, settings: Settings, initial: LoadedRules) -> None:
        self._settings = settings
        self._loaded = initial
        self.last_reload: ReloadAttempt | None = None

    @property
    def current(self) -> RuleSet:
        return self._loaded.rules

    @property
    def loaded(self) -> LoadedRules:
        return self._loaded

    @property
    def renderer(self) -> Renderer:
        return self._loaded.renderer

    def reload(self, *, now: datetime) -> LoadedRules:
        """Swap in freshly loaded rules; on RulesError keep the old ones and re-raise."""
        try:
            fresh = load(self._settings, now=now)
        except RulesError as exc:
            self.last_reload = ReloadAttempt(at=now, problems=tuple(exc.problems))
            raise
        self.last_reload = ReloadAttempt(at=now, problems=())
        self._loaded = fresh
        log.info(
            "rules reloaded",
            extra={"rules": len(fresh.rules.rules), "digest": fresh.rules.source.digest[:12]},
        )
        return fresh
