"""Group commit: concurrent requests share one transaction, each answered after its commit.

A request hands its row to `EventWriter.write()` and waits. One loop takes everything that
queued up while the previous commit ran and inserts it in a single statement
(`INSERT ... ON CONFLICT (dedup_key) DO NOTHING RETURNING`), so under load one fsync
acknowledges dozens of webhooks, and at low load a lone request commits at once. A failed
commit fails every request of its batch (they answer 503 and 360dialog retries); nothing is
acknowledged that is not committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from receiver.db.engine import Engine
from receiver.db.errors import ROW_REFUSED
from receiver.db.store import events

log = logging.getLogger("receiver.ingest")

MAX_BATCH = 256


class StoreUnavailableError(Exception):
    """The database could not commit; the caller must not acknowledge."""


@dataclass(frozen=True)
class WriteResult:
    event_id: int
    duplicate: bool


@dataclass
class _Pending:
    row: dict[str, Any]
    future: asyncio.Future[WriteResult] = field(repr=False)


class CommitListener(Protocol):
    """Told the ids of the events each commit stored (the relay, which hands them over)."""

    def __call__(self, event_ids: Sequence[int], *, marked: bool) -> None: ...


class EventWriter:
    """Owns the batching loop; `write()` returns once the row is durably committed.

    With a listener (the relay), each row is written already marked handed over
    (`enqueued_at`): the relay enqueues it right after the commit, and takes the mark back if
    the queue refuses it, so a hand-over costs no second statement per batch.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        on_committed: CommitListener | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._engine = engine
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._rejections: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        # Built once, run as an executemany for every batch (see `events.event_insert`).
        self._statement = events.event_insert(engine)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._flush_rejections()

    async def flush(self) -> None:
        """Commit what is queued and store the refusal samples now, instead of within a second."""
        await self._queue.join()
        await self._flush_rejections()

    async def write(self, row: dict[str, Any]) -> WriteResult:
        if self._task is None or self._task.done():
            raise StoreUnavailableError("event writer is not running")
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        if self._on_committed is not None:
            row["enqueued_at"] = row["received_at"]
        self._queue.put_nowait(_Pending(row=row, future=future))
        return await future

    def record_rejection(
        self, *, endpoint: str, reason: str, remote: str | None, size: int, at: datetime
    ) -> None:
        """Note a refused request; stored within a second (never blocks the 401)."""
        # A flood is counted in metrics; the table keeps a bounded sample of it.
        if len(self._rejections) < 10_000:
            self._rejections.append(
                {
                    "endpoint": endpoint,
                    "reason": reason,
                    "remote": remote,
                    "body_bytes": size,
                    "received_at": at,
                }
            )

    async def _run(self) -> None:
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout=1.0)
            except TimeoutError:
                await self._flush_rejections()
                continue
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if self._rejections:
                await self._flush_rejections()

    async def _commit(self, batch: list[_Pending]) -> None:
        pending = [item for item in batch if not item.future.done()]
        try:
            results = await self._insert_events([item.row for item in pending])
        except ROW_REFUSED as exc:
            # One odd row must not fail the others committed with it: retry them one by one.
            log.warning("event batch rejected (%s): committing rows one by one", type(exc).__name__)
            results = {}
            for item in pending:
                try:
                    results.update(await self._insert_events([item.row]))
                except Exception as single:  # noqa: BLE001 - this row only
                    log.error("event not stored: %s", type(single).__name__)
                    item.future.set_exception(StoreUnavailableError(type(single).__name__))
            pending = [item for item in pending if not item.future.done()]
        except Exception as exc:  # noqa: BLE001 - any database failure means "not committed"
            log.warning("event batch of %d not committed: %s", len(pending), type(exc).__name__)
            error = StoreUnavailableError(type(exc).__name__)
            for item in pending:
                item.future.set_exception(error)
            return
        new_ids: list[int] = []
        seen: set[str] = set()
        receipts: list[dict[str, Any]] = []
        for item in pending:
            key = item.row["dedup_key"]
            result = results[key]
            if key in seen:  # a second copy inside the same batch is a duplicate of the first
                result = WriteResult(event_id=result.event_id, duplicate=True)
            seen.add(key)
            if not result.duplicate:
                new_ids.append(result.event_id)
            item.future.set_result(result)
            receipts.append(
                {
                    "event_id": result.event_id,
                    "correlation_id": item.row.get("correlation_id"),
                    "event_type": item.row.get("event_type"),
                    "source": item.row.get("source"),
                    "outcome": "duplicate" if result.duplicate else "accepted",
                }
            )
        if receipts:
            # One line per commit, not per request: operations follow an event from here by
            # its correlation id or event id (docs/operations.md, "Logs").
            log.info(
                "events committed: %d new, %d duplicate",
                len(new_ids),
                len(receipts) - len(new_ids),
                extra={"events": receipts},
            )
        if new_ids and self._on_committed is not None:
            self._on_committed(new_ids, marked=True)

    async def _insert_events(self, rows: list[dict[str, Any]]) -> dict[str, WriteResult]:
        if not rows:
            return {}
        unique: dict[str, dict[str, Any]] = {}
        for row in rows:
            unique.setdefault(row["dedup_key"], row)
        # An executemany takes its columns from the first row: a webhook row and a callback
        # row (claim, no external id) in one batch must carry the same keys, or the batch
        # fails (a missing key) or silently drops a value (an extra one).
        columns = {name for row in unique.values() for name in row if name in events.EVENT_COLUMNS}
        batch = [{name: row.get(name) for name in columns} for row in unique.values()]
        results: dict[str, WriteResult] = {}
        async with self._engine.begin() as conn:
            inserted = await events.insert_events(conn, statement=self._statement, rows=batch)
            for event_id, key in inserted:
                results[key] = WriteResult(event_id=event_id, duplicate=False)
            missing = [key for key in unique if key not in results]
            if missing:
                for event_id, key in await events.ids_by_dedup_key(conn, keys=missing):
                    results[key] = WriteResult(event_id=event_id, duplicate=True)
        return results

    async def _flush_rejections(self) -> None:
        if not self._rejections:
            return
        rows, self._rejections = self._rejections, []
        try:
            async with self._engine.begin() as conn:
                await events.insert_rejections(conn, rows=rows)
        except Exception as exc:  # noqa: BLE001 - a lost sample of refusals is not an event lost
            log.warning("could not store %d rejected requests: %s", len(rows), type(exc).__name__)
