"""The published JSON Schema."""

from __future__ import annotations

from typing import Any

from receiver.routing import rules_json_schema


def walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(walk(value))
    return found


def test_the_schema_is_a_json_schema_with_title_and_description() -> None:
    schema = rules_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "hub-receiver routing rules"
    assert "${VAR}" in schema["description"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"targets", "rules", "time_intervals"}


def test_every_property_has_a_description() -> None:
    schema = rules_json_schema()
    for node in walk(schema):
        for name, prop in node.get("properties", {}).items():
            assert prop.get("description"), name


def test_every_object_forbids_unknown_keys() -> None:
    for name, definition in rules_json_schema()["$defs"].items():
        if definition.get("type") == "object":
            assert definition.get("additionalProperties") is False, name


def test_the_schema_uses_yaml_spellings() -> None:
    status = rules_json_schema()["$defs"]["StatusMatch"]
    assert set(status["properties"]) == {"from", "to"}


def test_every_reference_resolves() -> None:
    schema = rules_json_schema()
    for node in walk(schema):
        ref = node.get("$ref")
        if ref is not None:
            assert ref.startswith("#/$defs/")
            assert ref.removeprefix("#/$defs/") in schema["$defs"]
