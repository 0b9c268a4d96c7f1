"""YAML to plain data, remembering the line of every key and item.

PyYAML's composed nodes carry start marks; we build the Python value ourselves so each
path (("rules", 0, "notify", 1)) maps to its 1-based line, and so duplicate keys and
`${VAR}` expansion can be reported with a line. Mapping merges (`<<: *anchor`) work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import yaml
from yaml.constructor import SafeConstructor

Loc = tuple[str | int, ...]
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(slots=True)
class Document:
    """The plain value of one YAML document, its lines, and what went wrong building it."""

    value: object
    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[tuple[Loc, int, str]] = field(default_factory=list)

    def line_of(self, loc: Loc) -> int | None:
        """Return the line of the longest known prefix of `loc`."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None


def expand_variables(text: str, env: Mapping[str, str], missing: Callable[[str], None]) -> str:
    """Expand ${VAR} and ${VAR:-default}; `$$` is a literal `$`. Report unset names."""

    def replace(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        name, default = found.group(1), found.group(2)
        value = env.get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        missing(name)
        return ""

    return _VARIABLE.sub(replace, text) if "$" in text else text


def build_document(node: yaml.Node | None, env: Mapping[str, str]) -> Document:
    """Turn a composed node tree into plain data, expanding variables in string scalars."""
    document = Document(value=None)
    constructor = SafeConstructor()
    if node is not None:
        document.value = _build(node, (), document, constructor, env)
    return document


def _build(
    node: yaml.Node,
    loc: Loc,
    document: Document,
    constructor: SafeConstructor,
    env: Mapping[str, str],
) -> object:
    line = node.start_mark.line + 1
    document.lines.setdefault(loc, line)
    if isinstance(node, yaml.ScalarNode):
        value = constructor.construct_object(node)
        if isinstance(value, str):

            def missing(name: str) -> None:
                document.problems.append(
                    (loc, line, f"environment variable {name} is not set (no default given)")
                )

            value = expand_variables(value, env, missing)
        return value
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(child, (*loc, index), document, constructor, env)
            for index, child in enumerate(node.value)
        ]
    if isinstance(node, yaml.MappingNode):
        result: dict[str, object] = {}
        explicit: set[str] = set()
        merged: list[dict[str, object]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                source = _build(value_node, loc, document, constructor, env)
                sources = source if isinstance(source, list) else [source]
                merged.extend(s for s in sources if isinstance(s, dict))
                continue
            key = constructor.construct_object(key_node)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                document.problems.append((loc, key_line, f"key {key!r} must be text"))
                continue
            if key in explicit:
                document.problems.append(((*loc, key), key_line, "duplicate key"))
                continue
            explicit.add(key)
            document.lines[(*loc, key)] = key_line
            result[key] = _build(value_node, (*loc, key), document, constructor, env)
        for source in merged:
            for key, value in source.items():
                result.setdefault(key, value)
        return result
    return None  # pragma: no cover - PyYAML has only these three node kinds
