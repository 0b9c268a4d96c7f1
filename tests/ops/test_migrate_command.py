"""`hub-receiver migrate` says what it did: which revisions it applied, from where to where."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from receiver.db.migrate import upgrade
from tests.conftest import off_loop
from tests.support.processes import REPO, process_env


def migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", "migrate"],
        cwd=REPO,
        env=process_env({"DATABASE_URL": database_url}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_names_the_revisions_it_applied_and_then_that_there_was_nothing_to_do(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    off_loop(lambda: upgrade(url, "0001"))  # a database deployed with the first release

    applied = migrate(url)
    again = migrate(url)

    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.startswith("database upgraded from 0001 to ")
    assert "applied " in applied.stdout
    assert "0002 (" in applied.stdout  # each applied revision, with its title
    assert "already" not in applied.stdout
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("database already at the latest schema: ")


def test_migrate_on_an_empty_database_says_it_created_the_schema(tmp_path: Path) -> None:
    result = migrate(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("database schema created at ")
    assert "0001 (initial schema)" in result.stdout
