"""Tell a database that is unavailable (retry later) from one that refused the data.

A refusal (a value too long, a character PostgreSQL cannot store, a broken constraint) will
be refused again on every retry: it is a processing failure, counted against the attempt
cap and recorded, never retried forever as if the database were down.
"""

from __future__ import annotations

from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError, SQLAlchemyError

_REFUSED = (DataError, IntegrityError, ProgrammingError)


def database_unavailable(exc: BaseException) -> bool:
    """True for connection-level failures (server down, restarting, timeouts)."""
    if isinstance(exc, _REFUSED):
        return False
    return isinstance(exc, SQLAlchemyError | OSError | TimeoutError)
