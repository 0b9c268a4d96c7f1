"""Routing rules: the file model, the loader (file/line errors) and the pure matcher.

Typical use::

    ruleset = load_rules(settings.rules_path, env=os.environ, validate_target=check)
    for match in match_rules(ruleset, subject):
        ...  # one delivery per (event, match.rule, target)
"""

from receiver.routing.errors import RuleProblem, RulesError
from receiver.routing.explain import (
    Explanation,
    explain,
    explanation_as_dict,
    format_explanation,
)
from receiver.routing.loader import load_rules, load_rules_texts
from receiver.routing.matcher import RuleMatch, match_rules
from receiver.routing.ruleset import (
    Audience,
    CompiledRule,
    RuleSet,
    RuleSource,
    Target,
    audience_for_target,
)
from receiver.routing.schema import rules_json_schema
from receiver.routing.subject import RoutingSubject
from receiver.vocabulary import CLIENT_TARGET

__all__ = [
    "CLIENT_TARGET",
    "Audience",
    "CompiledRule",
    "Explanation",
    "RoutingSubject",
    "RuleMatch",
    "RuleProblem",
    "RuleSet",
    "RuleSource",
    "RulesError",
    "Target",
    "audience_for_target",
    "explain",
    "explanation_as_dict",
    "format_explanation",
    "load_rules",
    "load_rules_texts",
    "match_rules",
    "rules_json_schema",
]
