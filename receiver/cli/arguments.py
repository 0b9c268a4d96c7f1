"""How the CLI refuses bad input and reports a failure: one line, never a traceback.

Arguments are checked by argparse types (`count`, `days`, `row_id`), so a bad value stops
before anything runs; a database that cannot be reached is caught once, in `cli.main`, and
described by `database_failure()`. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import traceback

# Ids are 64-bit signed integers in both databases; a larger number can name no row (and
# made asyncpg raise OverflowError out of `deliveries retry`).
MAX_ROW_ID = 2**63 - 1

# Code that talks to the database: an OSError or TimeoutError raised through one of these
# is the database being unreachable, not some other file or socket failing.
_DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "alembic")


def _integer(value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value[:30]!r} is not a whole number") from None


def count(value: str) -> int:
    """An argparse type: a whole number, 0 or more (`--limit`)."""
    number = _integer(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value[:30]} is negative; give 0 or more")
    return number


def days(value: str) -> int:
    """An argparse type: a whole number of days, 1 or more (`--days`)."""
    number = _integer(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value[:30]} is not a number of days; give 1 or more")
    return number


def row_id(value: str) -> int:
    """An argparse type: a stored row's id (1 to 2**63 - 1)."""
    number = _integer(value)
    if not 1 <= number <= MAX_ROW_ID:
        raise argparse.ArgumentTypeError(
            f"{value[:30]} is not an id (ids run from 1 to {MAX_ROW_ID})"
        )
    return number


def _shown_url(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 -- a URL we cannot parse is shown by its scheme only
        return database_url.partition(":")[0] + "://***"


def _from_database_code(exc: BaseException) -> bool:
    for frame, _line in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DATABASE_MODULES:
            return True
    return False


def database_failure(exc: BaseException, *, database_url: str) -> str | None:
    """One line naming DATABASE_URL (password hidden) and what failed; None if not the database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        # The driver's own words ("database "x" does not exist"), without SQLAlchemy's
        # statement dump and link.
        what = str(exc.orig) if exc.orig is not None else str(exc)
    elif isinstance(exc, (OSError, TimeoutError)) and _from_database_code(exc):
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        return None
    what = what.strip().splitlines()[0] if what.strip() else type(exc).__name__
    try:
        password = make_url(database_url).password
    except Exception:  # noqa: BLE001 -- nothing to hide in a URL we cannot parse
        password = None
    if password:
        what = what.replace(str(password), "***")
    return f"cannot use the database at DATABASE_URL={_shown_url(database_url)}: {what}"
