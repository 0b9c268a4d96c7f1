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
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"


class RulesYamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so `off:`, `no`, `on` stay text.

    (A target named `off` or a status `no` must not turn into False.)
    """


RulesYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RulesYamlLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


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
    """Expand ${VAR} and ${VAR:-default} (defaults may nest); `$$` is a literal `$`.

    Unset variables without a default are reported through `missing` and expand to "".
    """
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            if end < 0:
                out.append(text[i:])
                break
            inner = text[i + 2 : end]
            name, has_default, default = inner.partition(":-")
            if not _NAME.fullmatch(name):
                out.append(text[i : end + 1])
            elif name in env:
                out.append(env[name])
            elif has_default:
                out.append(expand_variables(default, env, missing))
            else:
                missing(name)
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


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
            # Keys are names (targets, paths, fields): take plain scalars as written.
            key = (
                key_node.value
                if isinstance(key_node, yaml.ScalarNode)
                else constructor.construct_object(key_node)
            )
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
