"""The numbers' own API keys, which the partner hands over; hub-receiver never generates one.

`POST .../api_keys` would replace the key the client's integration uses, so the only way in
is `numbers set-key` (standard input) or `numbers import-keys` (a CSV file). Keys are kept
encrypted with Fernet under KEYS_SECRET; a `KeysError` never quotes a key, and neither does
anything else here (no logging of values, no repr of the rows).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from receiver.db.errors import DATABASE_ERRORS, database_unavailable
from receiver.db.store import health as store
from receiver.services import Services
from receiver.settings import Settings

log = logging.getLogger("receiver.watch.keys")

MAKE_SECRET = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
_MAX_KEY = 512
_MAX_ID = 64


class KeysError(Exception):
    """A key cannot be stored or read; the message says why and never quotes a key."""


def key_box(settings: Settings) -> Fernet:
    """The Fernet that encrypts keys, or KeysError saying how to set KEYS_SECRET."""
    if settings.keys_secret is None:
        raise KeysError(
            "KEYS_SECRET is not set: numbers' API keys are stored encrypted under it. "
            f"Make one with `{MAKE_SECRET}`, keep it with your other secrets, and export "
            "KEYS_SECRET in every process (serve, worker, CLI)"
        )
    try:
        return Fernet(settings.keys_secret.get_secret_value().strip().encode())
    except (ValueError, TypeError):
        raise KeysError(
            f"KEYS_SECRET is not a Fernet key (32 url-safe base64-encoded bytes); make one with "
            f"`{MAKE_SECRET}`"
        ) from None


def first_check_at(settings: Settings, *, channel_id: str, now: datetime) -> datetime:
    """A fixed offset into the interval per number, so 10,000 imported keys are not all due
    at once: checks stay spread over HEALTH_INTERVAL from then on."""
    digest = hashlib.sha256(channel_id.encode()).digest()
    offset = int.from_bytes(digest[:4], "big") % max(int(settings.health_interval), 1)
    return now + timedelta(seconds=offset)


def decrypt(box: Fernet, token: str) -> str:
    try:
        return box.decrypt(token.encode()).decode()
    except InvalidToken:
        raise KeysError("a stored key cannot be read with this KEYS_SECRET") from None


def clean_channel_id(raw: str) -> str:
    channel_id = raw.strip()
    if not channel_id or len(channel_id) > _MAX_ID or not channel_id.isprintable():
        raise KeysError("a channel id is 1-64 printable characters")
    return channel_id


def clean_key(raw: str) -> str:
    key = raw.strip()
    if not key:
        raise KeysError("the API key is empty")
    if len(key) > _MAX_KEY or any(ch.isspace() or not ch.isprintable() for ch in key):
        raise KeysError(
            "that does not look like an API key (spaces, control characters or too long)"
        )
    return key


async def set_key(services: Services, *, channel_id: str, api_key: str) -> None:
    box = key_box(services.settings)
    token = box.encrypt(clean_key(api_key).encode()).decode()
    channel_id = clean_channel_id(channel_id)
    now = services.clock()
    async with services.sessions() as session, session.begin():
        await store.put_key(
            session,
            channel_id=channel_id,
            encrypted=token,
            now=now,
            next_check_at=first_check_at(services.settings, channel_id=channel_id, now=now),
        )


async def remove_key(services: Services, *, channel_id: str) -> bool:
    async with services.sessions() as session, session.begin():
        return await store.clear_key(session, channel_id=channel_id.strip())


@dataclass(frozen=True, slots=True)
class KeyRow:
    channel_id: str
    api_key: str

    def __repr__(self) -> str:  # never the key, even in a traceback
        return f"KeyRow(channel_id={self.channel_id!r}, api_key=***)"


def read_key_csv(path: Path) -> list[KeyRow]:
    """Rows of a `channel_id,api_key` CSV (a header row is allowed); errors name file and line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise KeysError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise KeysError(f"{path}: not UTF-8 text") from None
    rows: list[KeyRow] = []
    seen: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text))
    for cells in reader:
        line = reader.line_num
        if not cells or all(not cell.strip() for cell in cells):
            continue
        if line == 1 and [c.strip().lower() for c in cells[:2]] == ["channel_id", "api_key"]:
            continue
        if len(cells) != 2:
            raise KeysError(
                f"{path}:{line}: expected 2 columns (channel_id,api_key), got {len(cells)}"
            )
        try:
            row = KeyRow(clean_channel_id(cells[0]), clean_key(cells[1]))
        except KeysError as exc:
            raise KeysError(f"{path}:{line}: {exc}") from None
        if row.channel_id in seen:
            first = seen[row.channel_id]
            raise KeysError(
                f"{path}:{line}: channel {row.channel_id} already given on line {first}"
            )
        seen[row.channel_id] = line
        rows.append(row)
    if not rows:
        raise KeysError(f"{path}: no channel_id,api_key rows")
    return rows


async def import_keys(services: Services, *, path: Path) -> int:
    """Store every key of the file, all or none; returns how many."""
    box = key_box(services.settings)
    rows = read_key_csv(path)
    now = services.clock()
    async with services.sessions() as session, session.begin():
        for row in rows:
            token = box.encrypt(row.api_key.encode()).decode()
            await store.put_key(
                session,
                channel_id=row.channel_id,
                encrypted=token,
                now=now,
                next_check_at=first_check_at(services.settings, channel_id=row.channel_id, now=now),
            )
    return len(rows)


async def check_keys_readable(services: Services) -> int:
    """Start-up check: every stored key decrypts under KEYS_SECRET; returns how many keys.

    A database that cannot be reached at start-up skips the check: the service must still
    start and answer 503 until the database is back; a key it cannot read then fails its
    health check with the same advice, one log line per number.
    """
    try:
        async with services.sessions() as session:
            stored = await store.encrypted_keys(session)
    except DATABASE_ERRORS as exc:
        if not database_unavailable(exc):
            raise
        log.warning(
            "stored number keys not checked at start-up: database unavailable (%s)",
            type(exc).__name__,
        )
        return 0
    if not stored:
        return 0
    try:
        box = key_box(services.settings)
    except KeysError as exc:
        raise KeysError(f"{len(stored)} numbers' API keys are stored, but {exc}") from None
    unreadable = [channel_id for channel_id, token in stored if not _readable(box, token)]
    if unreadable:
        shown = ", ".join(unreadable[:5]) + (" ..." if len(unreadable) > 5 else "")
        raise KeysError(
            f"{len(unreadable)} stored API keys cannot be read with this KEYS_SECRET ({shown}): "
            "start with the KEYS_SECRET they were stored under, or set them again "
            "(`hub-receiver numbers set-key CHANNEL_ID`)"
        )
    return len(stored)


def _readable(box: Fernet, token: str) -> bool:
    try:
        box.decrypt(token.encode())
    except InvalidToken:
        return False
    return True
