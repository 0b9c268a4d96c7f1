"""Imports run one way: a module imports only from its own layer or the layers below it.

Layers, lowest first. A module belongs to the layer of the longest prefix that names it;
`tests/` and `migrations/` are outside. Every `import receiver...` and
`from receiver... import` is read from the source (ast), including imports inside functions
and under `if TYPE_CHECKING:`, since a type-only import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import receiver

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # words and settings every layer may use; no I/O
    (
        "foundation",
        (
            "receiver.vocabulary",
            "receiver.durations",
            "receiver.settings",
            "receiver.logs",
            "receiver.metrics",
        ),
    ),
    ("db", ("receiver.db",)),
    # boundaries (Partner API, Apprise, webhook parsing) and pure decisions
    (
        "domain",
        (
            "receiver.partner",
            "receiver.status",
            "receiver.numbers",
            "receiver.routing",
            "receiver.messages",
            "receiver.notify",
            "receiver.ingest",
        ),
    ),
    # resources a process passes down
    ("services", ("receiver.services", "receiver.queue", "receiver.rate_slots")),
    ("pipeline", ("receiver.pipeline",)),
    ("jobs", ("receiver.jobs", "receiver.watch")),
    ("ops", ("receiver.ops",)),
    ("http", ("receiver.http",)),
    # processes: wiring builds every layer's pieces for web, worker and CLI
    (
        "processes",
        (
            "receiver.wiring",
            "receiver.app",
            "receiver.asgi",
            "receiver.worker",
            "receiver.collector",
        ),
    ),
    ("entry", ("receiver.cli", "receiver.dev", "receiver.__main__", "receiver")),
]

PACKAGE_ROOT = Path(receiver.__file__).parent


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), index)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from receiver.jobs import queue` imports receiver.queue
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "receiver" or name.startswith("receiver.")}


def known_module(name: str) -> str:
    """The longest prefix of `name` that is a module or package under receiver/."""
    parts = name.split(".")
    while len(parts) > 1:
        relative = Path(*parts[1:])
        if (PACKAGE_ROOT / relative).with_suffix(".py").exists() or (
            PACKAGE_ROOT / relative / "__init__.py"
        ).exists():
            return ".".join(parts)
        parts.pop()
    return "receiver"


def upward_imports() -> list[str]:
    found: list[str] = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        module = module_name(path)
        own = layer_of(module)
        for name in sorted({known_module(n) for n in imported_modules(path, module)}):
            if name == "receiver" and module != "receiver":
                continue  # `from receiver import x` is read through x
            if layer_of(name) > own:
                found.append(
                    f"{module} ({LAYERS[own][0]}) imports {name} ({LAYERS[layer_of(name)][0]})"
                )
    return found


def test_every_module_is_in_a_layer() -> None:
    for path in PACKAGE_ROOT.rglob("*.py"):
        layer_of(module_name(path))


def test_no_module_imports_from_a_higher_layer() -> None:
    found = upward_imports()
    assert not found, "imports from a higher layer:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("receiver.settings", "foundation"),
        ("receiver.db.store.events", "db"),
        ("receiver.partner.auth", "domain"),
        ("receiver.jobs.relay", "jobs"),
        ("receiver.wiring", "processes"),
        ("receiver.cli.main", "entry"),
    ],
)
def test_a_module_takes_the_layer_of_its_longest_prefix(module: str, layer: str) -> None:
    assert LAYERS[layer_of(module)][0] == layer
