"""Tell a database that is unavailable (retry later) from one that refused the data.

A refusal (a value too long, a character PostgreSQL cannot store, a broken constraint) will
be refused again on every retry: it is a processing failure, counted against the attempt
cap and recorded, never retried forever as if the database were down.
"""

from __future__ import annotations

import traceback

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError, SQLAlchemyError

_REFUSED = (DataError, IntegrityError, ProgrammingError)
# What a database failure looks like around a claim or a record (statements that cannot be
# refused for their data): SQLAlchemy's errors, or the driver's own connection errors.
DATABASE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
# A row the database refused for its data (a batch with one bad row is retried row by row).
ROW_REFUSED = (DataError, IntegrityError)


def database_unavailable(exc: BaseException) -> bool:
    """True for connection-level failures (server down, restarting, timeouts)."""
    if isinstance(exc, _REFUSED):
        return False
    return isinstance(exc, SQLAlchemyError | OSError | TimeoutError)


class DatabaseUnavailableError(Exception):
    """The database could not answer; the caller answers 503."""


# Code that talks to the database: an OSError or TimeoutError raised through one of these
# is the database being unreachable, not some other file or socket failing.
_DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "alembic")


def failure_detail(exc: BaseException) -> str | None:
    """The first line of what the database or its driver said; None if `exc` is not theirs."""
    if isinstance(exc, DBAPIError):
        # The driver's own words ("database "x" does not exist"), without SQLAlchemy's
        # statement dump and link.
        what = str(exc.orig) if exc.orig is not None else str(exc)
    elif isinstance(exc, OSError | TimeoutError) and _from_database_code(exc):
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        return None
    return what.strip().splitlines()[0] if what.strip() else type(exc).__name__


def _from_database_code(exc: BaseException) -> bool:
    for frame, _line in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DATABASE_MODULES:
            return True
    return False


def shown_url(database_url: str) -> str:
    """`database_url` with its password hidden, as SQLAlchemy reads it."""
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 -- a URL we cannot parse is shown by its scheme only
        return database_url.partition(":")[0] + "://***"


def url_password(database_url: str) -> str | None:
    try:
        password = make_url(database_url).password
    except Exception:  # noqa: BLE001 -- nothing to hide in a URL we cannot parse
        return None
    return str(password) if password else None
