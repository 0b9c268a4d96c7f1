"""The published JSON Schema of a rules file (`hub-receiver rules schema`)."""

from __future__ import annotations

from typing import Any

from receiver.routing.model import RulesFile

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def rules_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a routing rules file (before ${VAR} expansion)."""
    schema = RulesFile.model_json_schema(by_alias=True)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "hub-receiver routing rules",
        "description": (
            "Routing rules for hub-receiver: named Apprise targets and an ordered list of "
            "rules. Strings may use ${VAR} or ${VAR:-default}, expanded from the "
            "environment when the file is loaded. See routing_rules/README.md."
        ),
        **{k: v for k, v in schema.items() if k not in {"title", "description"}},
    }
