"""Run Alembic migrations from code (the CLI's `migrate` and `serve` on the embedded default)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from receiver.db.engine import create_engine

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    # Passed as an attribute, not a main option: configparser would mangle a '%' in a password.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade the database (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    # Alembic's async env calls asyncio.run(): it must not run inside our loop.
    await asyncio.to_thread(upgrade, database_url, revision)


@dataclass(frozen=True)
class Revision:
    id: str
    title: str

    def __str__(self) -> str:
        return f"{self.id} ({self.title})" if self.title else self.id


@dataclass(frozen=True)
class MigrationResult:
    """What `migrate` did: the schema before and after, and each revision applied in order."""

    before: Revision | None
    after: Revision | None
    applied: tuple[Revision, ...]

    def describe(self) -> str:
        if not self.applied:
            return f"database already at the latest schema: {self.after or 'no revision'}"
        steps = ", ".join(str(revision) for revision in self.applied)
        count = len(self.applied)
        what = f"applied {count} migration{'s' if count != 1 else ''}: {steps}"
        end = self.after.id if self.after else "?"
        if self.before is None:
            return f"database schema created at {end}, the latest schema; {what}"
        return f"database upgraded from {self.before.id} to {end}, the latest schema; {what}"


def _read_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _current_revision(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_read_revision)
    finally:
        await engine.dispose()  # aiosqlite's thread would keep the process alive otherwise


def migrate(database_url: str) -> MigrationResult:
    """Upgrade to the latest schema and say what changed (blocking; runs its own loops)."""
    config = alembic_config(database_url)
    scripts = ScriptDirectory.from_config(config)

    def revision(rev_id: str | None) -> Revision | None:
        if rev_id is None:
            return None
        script = scripts.get_revision(rev_id)
        title = (script.doc or "").strip() if script is not None else ""
        return Revision(rev_id, title)

    before = asyncio.run(_current_revision(database_url))
    command.upgrade(config, "head")
    after = asyncio.run(_current_revision(database_url))
    applied: list[Revision] = []
    if after != before and after is not None:
        # walk_revisions goes newest first, from `after` down to just above `before`.
        for script in scripts.walk_revisions(base=before or "base", head=after):
            if script.revision != before:
                applied.append(Revision(script.revision, (script.doc or "").strip()))
    return MigrationResult(
        before=revision(before), after=revision(after), applied=tuple(reversed(applied))
    )
