"""`hub-receiver export numbers`: the numbers as CSV (receiver/ops/export.py), to stdout or a file.

`--output FILE` is written next to FILE under a temporary name and renamed over it only when
complete, so a reader (or a failed run) never sees half an export. `--refresh` runs the
`reconcile` command first (its report goes to stderr), then waits for serve or a worker to
store what it found: reconciliation records events, and only processing them changes the
stored snapshots the export reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import time
from pathlib import Path
from typing import BinaryIO

from receiver.cli.reconcile_commands import reconcile_command
from receiver.cli.terminal import clean_lines
from receiver.ops import records
from receiver.ops.export import number_csv
from receiver.routing.errors import RulesError
from receiver.services import Services, base_services
from receiver.settings import Settings
from receiver.vocabulary import EventState

# Beyond two sweeps (the next sweep of serve or a worker hands reconcile's events over, and
# one more for a job that was lost), what processing them may take.
REFRESH_MARGIN = 15.0
POLL_INTERVAL = 0.25


class OutputError(Exception):
    """The export's destination cannot be written."""


class Destination:
    """Standard output, or FILE replaced atomically by `commit()`; `discard()` cleans up."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.temp: Path | None = None
        self.stream: BinaryIO
        if path is None:
            sys.stdout.flush()
            self.stream = sys.stdout.buffer  # bytes: CRLF and UTF-8 exactly as generated
            return
        if path.is_dir():
            raise OutputError(f"cannot write {path}: it is a directory")
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            # 0o666 less the umask, as a new file gets; an existing file keeps its mode (the
            # export holds contact emails: whoever restricted the file meant it).
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise self._error(exc) from None
        self.temp = temp
        self.stream = os.fdopen(descriptor, "wb")
        try:
            if path.exists():
                temp.chmod(path.stat().st_mode & 0o7777)
        except OSError as exc:
            self.discard()
            raise self._error(exc) from None

    def write(self, text: str) -> None:
        try:
            self.stream.write(text.encode("utf-8"))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._error(exc) from None

    def commit(self) -> None:
        try:
            self.stream.flush()
            if self.temp is not None and self.path is not None:
                os.fsync(self.stream.fileno())
                self.stream.close()
                self.temp.replace(self.path)
                self.temp = None
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._error(exc) from None

    def discard(self) -> None:
        if self.temp is None:
            return
        self.stream.close()
        self.temp.unlink(missing_ok=True)
        self.temp = None

    def _error(self, exc: OSError) -> OutputError:
        where = self.path if self.path is not None else "standard output"
        return OutputError(f"cannot write {where}: {exc.strerror or exc}")


async def export_numbers_command(
    settings: Settings, *, output: Path | None, refresh: bool, spreadsheet: bool
) -> int:
    try:
        destination = Destination(output)  # before any work: a bad path fails at once
    except OutputError as exc:
        print(clean_lines(f"hub-receiver: {exc}"), file=sys.stderr)
        return 2
    try:
        services = base_services(settings)
        try:
            if refresh and (code := await _refresh(services)) != 0:
                return code
            async for chunk in number_csv(services, spreadsheet=spreadsheet):
                destination.write(chunk)
        finally:
            await services.engine.dispose()
        destination.commit()
    except OutputError as exc:
        print(clean_lines(f"hub-receiver: {exc}"), file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and let nothing flush into the pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        destination.discard()
    return 0


async def _refresh(services: Services) -> int:
    """Reconcile as `hub-receiver reconcile` does, then wait until what it found is stored."""
    settings = services.settings
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout may be the export itself
            code = await reconcile_command(settings, dry_run=False, as_json=False)
    except RulesError as exc:  # the reconcile command loads the rules (its events route)
        print(clean_lines(str(exc)), file=sys.stderr)
        return 1
    if code != 0:
        return code
    wait = 2 * settings.sweep_interval + REFRESH_MARGIN
    if not await _wait_until_processed(services, wait=wait):
        print(
            f"hub-receiver: what reconcile found is not stored yet after {wait:.0f}s "
            "(serve or a worker stores it: is one running?); exporting the numbers as stored",
            file=sys.stderr,
        )
    return 0


async def _wait_until_processed(services: Services, *, wait: float) -> bool:
    """Whether every event reconciliation recorded was processed within `wait` seconds."""
    deadline = time.monotonic() + wait
    told = False
    while await _reconcile_pending(services):
        if time.monotonic() >= deadline:
            return False
        if not told:
            print("waiting for serve or a worker to store what reconcile found", file=sys.stderr)
            told = True
        await asyncio.sleep(POLL_INTERVAL)
    return True


async def _reconcile_pending(services: Services) -> bool:
    """Whether an event reconciliation recorded (now or in an earlier pass) waits to be stored."""
    pending = records.Filters(source="reconcile", state=EventState.RECEIVED.value)
    page = await records.list_events(services, filters=pending, window=records.Window(limit=1))
    return bool(page.items)
