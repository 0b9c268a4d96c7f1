"""Render a notification (title + body) for one audience, never raising.

Templates live in `templates/<audience>/<name>.j2` (audience: `ops` or `client`) and define
`{% block title %}` and `{% block body %}`. The rules folder's `templates/` is searched
first (user overrides), then the built-in defaults next to this module. A name with no
template falls back to `generic`. Inline `title`/`body` from a rule replace the blocks.

Any failure (syntax, undefined variable, sandbox refusal, budget) yields a plain fallback
message built without Jinja, plus the error text in `Rendered.error`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
)
from jinja2.runtime import Context

from receiver.messages.fallback import fallback_message
from receiver.messages.sandbox import GuardedEnvironment, budget_scope
from receiver.routing.ruleset import Audience

DEFAULT_TEMPLATES = Path(__file__).parent / "templates"
GENERIC_TEMPLATE = "generic"
MAX_TEMPLATE_SOURCE = 64 * 1024
MAX_TITLE = 250
MAX_BODY = 16 * 1024
TRUNCATED = "\n… (truncated)"
DEFAULT_LINKS: Mapping[str, str] = {
    "hub": "https://hub.360dialog.com/dashboard/app/{partner_id}",
}
DEFAULT_SENDER = "Your WhatsApp Business team"
_INLINE_CACHE_SIZE = 512
CAPTURED_BLOCKS = frozenset({"title", "body"})


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message ready to send; `error` says why the fallback was used, if it was."""

    title: str
    body: str
    error: str | None


class _CappedLoader(BaseLoader):
    """Refuse template files over MAX_TEMPLATE_SOURCE characters."""

    def __init__(self, inner: BaseLoader) -> None:
        self._inner = inner

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self._inner.get_source(environment, template)
        if len(source) > MAX_TEMPLATE_SOURCE:
            raise TemplateError(
                f"template {template} is over {MAX_TEMPLATE_SOURCE // 1024} KiB; refusing it"
            )
        return source, filename, uptodate

    def list_templates(self) -> list[str]:
        return self._inner.list_templates()


class Renderer:
    """Renders messages from the user's and the built-in templates in one sandbox."""

    def __init__(
        self,
        *,
        user_templates: Path | None = None,
        partner_id: str | None = None,
        links: Mapping[str, str] | None = None,
        sender_name: str = DEFAULT_SENDER,
    ) -> None:
        loaders: list[BaseLoader] = []
        if user_templates is not None:
            loaders.append(FileSystemLoader(user_templates))
        loaders.append(FileSystemLoader(DEFAULT_TEMPLATES))
        self._env = GuardedEnvironment(
            loader=_CappedLoader(ChoiceLoader(loaders)),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._partner_id = partner_id
        self._links = {**DEFAULT_LINKS, **(links or {})}
        self._inline: dict[str, Template] = {}
        self._sender_name = sender_name

    @classmethod
    def for_rules(cls, rules_path: Path, **options: Any) -> Renderer:
        """Build a renderer whose user templates sit in the rules folder's `templates/`."""
        folder = rules_path if rules_path.is_dir() else rules_path.parent
        templates = folder / "templates"
        return cls(user_templates=templates if templates.is_dir() else None, **options)

    def has_template(self, name: str) -> bool:
        """Return whether a template `name` exists for at least one audience."""
        return any(self._exists(f"{audience}/{name}.j2") for audience in ("ops", "client"))

    def render(
        self,
        *,
        template: str | None,
        title: str | None,
        body: str | None,
        audience: Audience,
        context: Mapping[str, Any],
    ) -> Rendered:
        """Render title and body; on any failure return the fallback and the error."""
        variables = {
            **context,
            "links": self._resolve_links(context),
            "audience": audience,
            "sender_name": self._sender_name,
        }
        try:
            with budget_scope():
                parts = self._render_parts(template, title, body, audience, variables)
        except Exception as exc:  # noqa: BLE001 - a broken template must not drop a message
            fallback_title, fallback_body = fallback_message(variables, audience=audience)
            return Rendered(fallback_title, fallback_body, _describe(exc))
        return Rendered(_cap_title(parts[0]), _cap_body(parts[1]), None)

    def _render_parts(
        self,
        template: str | None,
        title: str | None,
        body: str | None,
        audience: Audience,
        variables: dict[str, Any],
    ) -> tuple[str, str]:
        blocks: dict[str, str] = {}
        if title is None or body is None:
            blocks = self._render_blocks(self._file_template(template, audience), variables)
        title_text = self._inline_template(title).render(variables) if title is not None else None
        body_text = self._inline_template(body).render(variables) if body is not None else None
        if title_text is None:
            title_text = blocks.get("title")
        if title_text is None or not title_text.strip():
            title_text = fallback_message(variables, audience=audience)[0]
        if body_text is None:
            if "body" not in blocks:
                raise TemplateError(f"template {template or GENERIC_TEMPLATE!r} has no body block")
            body_text = blocks["body"]
        return title_text, body_text

    def _file_template(self, name: str | None, audience: Audience) -> Template:
        try:
            return self._env.get_template(f"{audience}/{name or GENERIC_TEMPLATE}.j2")
        except TemplateNotFound:
            return self._env.get_template(f"{audience}/{GENERIC_TEMPLATE}.j2")

    def _inline_template(self, source: str) -> Template:
        found = self._inline.get(source)
        if found is None:
            if len(source) > MAX_TEMPLATE_SOURCE:
                raise TemplateError("inline template is over the size limit")
            if len(self._inline) >= _INLINE_CACHE_SIZE:
                self._inline.clear()
            found = self._env.from_string(source)
            self._inline[source] = found
        return found

    def _exists(self, name: str) -> bool:
        try:
            self._env.get_template(name)
        except TemplateNotFound:
            return False
        except TemplateError:
            return True  # present but broken: rendering will report it
        return True

    @staticmethod
    def _render_blocks(template: Template, variables: dict[str, Any]) -> dict[str, str]:
        # Run the whole template (so top-level `set`, imports and `extends` work) and
        # capture what the title and body blocks yield instead of letting it into the page.
        context = template.new_context(variables)
        captured: dict[str, str] = {}
        context.blocks = _CapturingBlocks(context.blocks, captured)
        for _ in template.root_render_func(context):
            pass
        return captured

    def _resolve_links(self, context: Mapping[str, Any]) -> dict[str, str | None]:
        facts = context.get("facts")
        values: dict[str, str] = {}
        if isinstance(facts, Mapping):
            for key in ("client_id", "channel_id"):
                if isinstance(facts.get(key), str):
                    values[key] = quote(facts[key], safe="")
        if self._partner_id:
            values["partner_id"] = quote(self._partner_id, safe="")
        links: dict[str, str | None] = {}
        for name, pattern in self._links.items():
            try:
                links[name] = pattern.format_map(values)
            except (KeyError, ValueError, IndexError):
                links[name] = None
        return links


BlockFunction = Callable[[Context], Iterator[str]]


class _CapturingBlocks(dict[str, list[BlockFunction]]):
    """Block table whose title/body entries record their output the first time they run.

    Parents add their blocks while rendering (`extends`), so wrapping happens on lookup.
    """

    def __init__(self, blocks: dict[str, list[BlockFunction]], captured: dict[str, str]):
        super().__init__(blocks)
        self._captured = captured

    def __getitem__(self, name: str) -> list[BlockFunction]:
        functions = super().__getitem__(name)
        if name not in CAPTURED_BLOCKS or name in self._captured:
            return functions
        first = functions[0]
        captured = self._captured

        def capture(context: Context) -> Iterator[str]:
            captured[name] = "".join(first(context))
            return iter(())

        return [capture, *functions[1:]]


def _describe(exc: BaseException) -> str:
    where = ""
    if isinstance(exc, TemplateSyntaxError):
        where = f" ({exc.name or 'inline template'} line {exc.lineno})"
    else:
        # Jinja rewrites tracebacks so template frames carry the template's file and line.
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename.endswith(".j2") or frame.filename == "<template>":
                name = Path(frame.filename).name if frame.filename.endswith(".j2") else "inline"
                where = f" ({name} line {frame.lineno})"
                break
    message = str(exc) or type(exc).__name__
    if len(message) > 300:
        message = message[:299] + "…"
    return f"{type(exc).__name__}: {message}{where}"


def _cap_title(text: str) -> str:
    title = " ".join(text.split())
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


def _cap_body(text: str) -> str:
    body = text.strip("\n").rstrip()
    if len(body) <= MAX_BODY:
        return body
    return body[: MAX_BODY - len(TRUNCATED)] + TRUNCATED
