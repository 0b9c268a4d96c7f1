"""The job queue seam: one small interface, two backends running the same job functions.

Jobs take ids, never objects (`async def job(ctx, id)`), so a job can be repeated, swept up
again, or run by another process. The database is the record of what must happen; a queue
only carries the news of it, which is why losing a queue (Redis down, process killed) can
delay work but never lose it: the relay's sweep re-enqueues whatever is still due.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

JobContext = dict[str, Any]
JobFunction = Callable[[JobContext, int], Awaitable[None]]


class QueueUnavailableError(Exception):
    """The queue could not take the jobs (e.g. Redis is down); the sweep will retry."""


class RetryLater(Exception):  # noqa: N818 - reads as an instruction at the raise site
    """Raised by a job to run again after `defer` seconds (becomes arq's `Retry`)."""

    def __init__(self, defer: float) -> None:
        super().__init__(f"retry in {defer:.1f}s")
        self.defer = defer


@dataclass(frozen=True)
class JobRequest:
    function: str
    arg: int
    defer: float = 0.0

    @property
    def job_id(self) -> str:
        # Deterministic: enqueueing the same work twice while it is queued is a no-op.
        return f"{self.function}:{self.arg}"


class JobQueue(Protocol):
    name: str

    async def enqueue_many(self, jobs: Sequence[JobRequest]) -> None:
        """Hand jobs over; raise QueueUnavailableError when that is not possible now."""

    async def ping(self) -> bool:
        """Whether the queue can take work right now."""

    async def close(self) -> None:
        """Stop taking work; drain or hand back what is in flight."""
