"""A Jinja2 sandbox that also refuses resource bombs.

Jinja's sandbox stops attribute escapes but happily renders `{{ 'a' * 10**9 }}`. On top of
`ImmutableSandboxedEnvironment` (no list/dict mutation) this environment:

- intercepts `*`, `**`, `+` and `%` and refuses results over `MAX_VALUE_CHARS`;
- allows only a short list of harmless `str` methods (no `format`, `ljust`, `zfill`...);
- refuses integer arguments over `MAX_INT_ARG` in any call or filter, and estimates the
  size of the expanding filters (`join`, `replace`, `indent`, `format`) before running them;
- rewrites every parsed template so that each `for` loop, each output and each `~` concat
  passes through a guard that charges a per-render `RenderBudget` (iterations, output
  characters, wall-clock deadline).

The budget lives in a ContextVar so that every guard reaches it, including code in
imported templates and macros; `budget_scope()` opens one per render.
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, cast

from jinja2 import nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_VALUE_CHARS = 64 * 1024
MAX_INT_ARG = 10_000
MAX_ITERATIONS = 10_000
MAX_OUTPUT_CHARS = 256 * 1024
MAX_SECONDS = 1.0
MAX_POW_BITS = 4096

GUARD_ITER = "__guard_iter__"
GUARD_OUTPUT = "__guard_output__"
GUARD_SIZE = "__guard_size__"

_SAFE_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "count", "endswith", "find", "isalnum", "isalpha",
        "isdigit", "islower", "isnumeric", "isspace", "isupper", "lower", "lstrip",
        "partition", "removeprefix", "removesuffix", "replace", "rfind", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase",
        "title", "upper",
    }
)  # fmt: skip
_WIDE_FORMAT = re.compile(r"%[#0 +\-]*(\*|\d{5,}|\d*\.(\*|\d{5,}))")


@dataclass(slots=True)
class RenderBudget:
    """What one render may still spend."""

    iterations: int = MAX_ITERATIONS
    output_chars: int = MAX_OUTPUT_CHARS
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError(f"template took longer than {MAX_SECONDS}s")


_BUDGET: ContextVar[RenderBudget | None] = ContextVar("render_budget", default=None)


@contextmanager
def budget_scope() -> Iterator[RenderBudget]:
    """Give the renders inside this block a fresh budget."""
    budget = RenderBudget()
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def _budget() -> RenderBudget:
    budget = _BUDGET.get()
    if budget is None:
        raise SecurityError("templates render only inside a budget_scope()")
    budget.check_time()
    return budget


def _sized(value: object) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


def _refuse_big(size: int, what: str) -> None:
    if size > MAX_VALUE_CHARS:
        raise SecurityError(f"{what} would be {size} long (limit {MAX_VALUE_CHARS})")


def _check_format(spec: str) -> None:
    if _WIDE_FORMAT.search(spec):
        raise SecurityError("format widths over 9999 or '*' are not allowed")


def _check_ints(args: Iterable[object]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_INT_ARG:
            raise SecurityError(f"argument {arg} is over the limit of {MAX_INT_ARG}")


def _check_replace(text: str, old: object, new: object) -> None:
    if isinstance(old, str) and isinstance(new, str):
        hits = len(text) + 1 if not old else text.count(old)
        _refuse_big(len(text) + hits * max(0, len(new) - len(old)), "replace result")


class _Guards(NodeTransformer):
    """Route loops, outputs and concatenations through the budget guards."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 - visitor naming
        self.generic_visit(node)
        node.iter = _filter(cast(nodes.Expr, node.iter), GUARD_ITER)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        node.nodes = [
            _filter(
                nodes.Const(child.data, lineno=child.lineno)
                if isinstance(child, nodes.TemplateData)
                else child,
                GUARD_OUTPUT,
            )
            for child in node.nodes
        ]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return _filter(node, GUARD_SIZE)


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


# The guards take the context only so Jinja cannot fold them at compile time.
@pass_context
def _guard_iter(_context: Context, iterable: Iterable[object]) -> Iterator[object]:
    budget = _budget()
    for item in iterable:
        budget.iterations -= 1
        if budget.iterations < 0:
            raise SecurityError(f"loops ran more than {MAX_ITERATIONS} times in all")
        if budget.iterations % 256 == 0:
            budget.check_time()
        yield item


@pass_context
def _guard_output(_context: Context, value: object) -> str:
    budget = _budget()
    text = str(value)
    budget.output_chars -= len(text)
    if budget.output_chars < 0:
        raise SecurityError(f"template produced more than {MAX_OUTPUT_CHARS} characters")
    return text


@pass_context
def _guard_size(_context: Context, value: object) -> object:
    _budget()
    size = _sized(value)
    if size is not None:
        _refuse_big(size, "value")
    return value


def _capped_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1

    @wraps(func)  # keeps jinja_pass_arg, so Jinja still passes context/environment
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_ints(args[skip:])
        _check_ints(kwargs.values())
        value = args[skip - 1] if len(args) >= skip else None
        rest = args[skip:]
        if name == "join":
            items = [str(v) for v in (value if isinstance(value, Iterable) else ())]
            separator = str(rest[0] if rest else kwargs.get("d", ""))
            total = sum(map(len, items)) + len(separator) * max(0, len(items) - 1)
            _refuse_big(total, "join result")
            return func(*args[: skip - 1], items, *rest, **kwargs)
        if name == "replace" and isinstance(value, str) and len(rest) >= 2:
            _check_replace(value, rest[0], rest[1])
        if name == "indent" and isinstance(value, str):
            width = rest[0] if rest else kwargs.get("width", 4)
            size = len(width) if isinstance(width, str) else int(width)
            _refuse_big(len(value) + (value.count("\n") + 1) * size, "indent result")
        if name == "format" and isinstance(value, str):
            _check_format(value)
        return func(*args, **kwargs)

    return guarded


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox every template (file or inline) is compiled and rendered in."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _capped_filter(name, f) for name, f in self.filters.items()}
        self.filters[GUARD_ITER] = _guard_iter
        self.filters[GUARD_OUTPUT] = _guard_output
        self.filters[GUARD_SIZE] = _guard_size
        self.globals.pop("lipsum", None)
        self.globals["range"] = _guarded_range

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Private hook (stable through Jinja 3.1): the only place to see the whole AST of
        # every template, inline or loaded, before it is compiled.
        tree = super()._parse(source, name, filename)
        _Guards().visit(tree)
        return tree

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # str.format is refused outright (widths like {:>999999999} allocate freely);
        # returning None sends it through is_safe_attribute, which says no.
        return None

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not isinstance(obj, str) or attr in _SAFE_STR_METHODS

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _budget()
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                size = _sized(seq)
                if size is not None and isinstance(count, int):
                    _refuse_big(size * count, "repeated value")
        elif operator == "+":
            left_size, right_size = _sized(left), _sized(right)
            if left_size is not None and right_size is not None:
                _refuse_big(left_size + right_size, "joined value")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int):
                if right > 0 and abs(left).bit_length() * right > MAX_POW_BITS:
                    raise SecurityError("power result too large")
            elif isinstance(right, int | float) and abs(right) > MAX_INT_ARG:
                raise SecurityError("exponent too large")
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        return _BINOPS[operator](left, right)

    def call(
        __self,  # noqa: N805 - Jinja's signature, see SandboxedEnvironment.call
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _budget()
        _check_ints(args)
        _check_ints(kwargs.values())
        self_obj = getattr(__obj, "__self__", None)
        if (
            isinstance(self_obj, str)
            and getattr(__obj, "__name__", "") == "replace"
            and len(args) >= 2
        ):
            _check_replace(self_obj, args[0], args[1])
        return super().call(__context, __obj, *args, **kwargs)


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "*": operator.mul,
    "**": operator.pow,
    "+": operator.add,
    "%": operator.mod,
}


def _guarded_range(*args: int) -> range:
    _check_ints(args)
    result = range(*args)
    if len(result) > MAX_ITERATIONS:
        raise SecurityError(f"range() longer than {MAX_ITERATIONS}")
    return result
