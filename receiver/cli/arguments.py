"""How the CLI refuses bad input and reports a failure: one line, never a traceback.

Arguments are checked by argparse types (`count`, `days`, `row_id`), so a bad value stops
before anything runs; a database that cannot be reached is caught once, in `cli.main`, and
described by `database_failure()`. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse

# Ids are 64-bit signed integers in both databases (receiver.db.types.MAX_ID, not imported
# here: the CLI's argument parsing does not load SQLAlchemy).
MAX_ROW_ID = 2**63 - 1


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
    # A larger number can name no row (and made asyncpg raise OverflowError out of
    # `deliveries retry`).
    if not 1 <= number <= MAX_ROW_ID:
        raise argparse.ArgumentTypeError(
            f"{value[:30]} is not an id (ids run from 1 to {MAX_ROW_ID})"
        )
    return number


def database_failure(exc: BaseException, *, database_url: str) -> str | None:
    """One line naming DATABASE_URL (password hidden) and what failed; None if not the database."""
    from receiver.db.errors import failure_detail, shown_url, url_password

    what = failure_detail(exc)
    if what is None:
        return None
    password = url_password(database_url)
    if password:
        what = what.replace(password, "***")
    return f"cannot use the database at DATABASE_URL={shown_url(database_url)}: {what}"
