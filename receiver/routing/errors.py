"""Problems found while loading routing rules.

Every problem names where it is (file, line), which rule and which key, so a user can
go straight to it: ``routing_rules/default.yaml:14: rule 'x': notify: unknown target``.
Target URLs never appear in a problem; targets are named instead (they hold tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong with a rules file."""

    file: str
    line: int | None
    rule: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where]
        if self.rule is not None:
            parts.append(f"rule {self.rule!r}")
        if self.key:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)

    def as_dict(self) -> dict[str, str | int | None]:
        """Return a JSON-able form (for `rules check --json` and the admin API)."""
        return {
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "key": self.key,
            "message": self.message,
        }


class RulesError(Exception):
    """The rules could not be loaded; `problems` lists every reason found."""

    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        self.problems: tuple[RuleProblem, ...] = tuple(problems)
        super().__init__(self._summary())

    def _summary(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in routing rules"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])

    def __str__(self) -> str:
        return self._summary()
