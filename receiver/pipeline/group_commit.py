"""`GroupCommit`: the jobs of one process that write at the same moment share one transaction.

Used for delivery claims and records (`receiver.pipeline.deliver`) and event claims
(`receiver.jobs.process`): a busy worker pays one round trip per batch instead of one per
job, and a lone job pays no extra wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class GroupCommit(Generic[In, Out]):
    """Run the items jobs submit through `flush` together: one transaction for all of them.

    Items that arrive while a flush runs wait for the next one, so a lone item pays no
    extra wait and a busy worker writes as many rows per round trip as it has jobs
    waiting. A batch failing with one of `split_on` (a row the database refused) is run
    again item by item, so one bad row cannot hold up the others; any other failure (the
    database is down) fails every item of the batch.

    `linger()`, asked before each batch, is how long to let more items gather first: a
    caller that knows more are coming (its other jobs are about to submit) trades that
    much latency for a larger batch; 0 flushes at once.
    """

    def __init__(
        self,
        flush: Callable[[list[In]], Awaitable[list[Out]]],
        *,
        max_batch: int,
        split_on: tuple[type[BaseException], ...] = (),
        linger: Callable[[], float] | None = None,
    ) -> None:
        self._flush = flush
        self._linger = linger
        self._max_batch = max_batch
        self._split_on = split_on
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="group-commit")
        return await future

    async def _run(self) -> None:
        while self._waiting:
            wait = self._linger() if self._linger is not None else 0.0
            if wait > 0 and len(self._waiting) < self._max_batch:
                try:
                    await asyncio.sleep(wait)
                except asyncio.CancelledError:  # the loop is going away: so do the waiting jobs
                    for _item, future in self._waiting:
                        future.cancel()
                    self._waiting.clear()
                    raise
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            await self._settle(batch)

    async def _settle(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            results = await self._flush([item for item, _future in batch])
        except BaseException as exc:
            if len(batch) > 1 and isinstance(exc, self._split_on):
                await asyncio.gather(*(self._settle([entry]) for entry in batch))
                return
            for _item, future in batch:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()  # the loop is going away: so do the waiting jobs
            if not isinstance(exc, Exception):
                raise
            return
        for (_item, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
