"""Authentication under attack: forged, mangled and replayed webhooks; guessed admin tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from receiver.db.tables import Delivery, Event
from receiver.settings import Settings
from tests.hostile.support import (
    LogCapture,
    assert_json_error,
    raw_request,
    rendered,
    troubles,
)
from tests.ops.support import settle
from tests.support.app import RunningApp, running_app
from tests.support.fakes import Sink
from tests.support.samples import sample

SECRET = "whsec-auth-Tq93Lm"
OLD_SECRET = "whsec-auth-old-Pb27Xc"
SHARED = "shared-auth-Vn58Rk"
ADMIN = "admin-auth-Kw61Jd"
WEBHOOK = "/webhooks/partner"
JSON = {"content-type": "application/json"}


def digest(body: bytes, secret: str = SECRET) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def channel_live(n: int) -> bytes:
    document = orjson.loads(sample("partner_webhook.channel_live.json"))
    document["id"] = f"{document['id'][:-4]}{n:04d}"
    return orjson.dumps(document)


GOOD_ENCODINGS: dict[str, Callable[[bytes], str]] = {
    "hex": lambda d: d.hex(),
    "HEX": lambda d: d.hex().upper(),
    "sha256=hex": lambda d: "sha256=" + d.hex(),
    "SHA256=HEX": lambda d: "SHA256=" + d.hex().upper(),
    "base64": lambda d: base64.b64encode(d).decode(),
    "base64 unpadded": lambda d: base64.b64encode(d).decode().rstrip("="),
    "urlsafe base64": lambda d: base64.urlsafe_b64encode(d).decode(),
    "urlsafe unpadded": lambda d: base64.urlsafe_b64encode(d).decode().rstrip("="),
    "sha256=base64": lambda d: "sha256=" + base64.b64encode(d).decode(),
    "Sha256=mixed case": lambda d: "Sha256=" + d.hex()[:32] + d.hex()[32:].upper(),
}

# Each turns the right signature into one that must be refused.
BAD_SIGNATURES: dict[str, Callable[[bytes, bytes], str]] = {
    "hex, last digit changed": lambda b, d: d.hex()[:-1] + ("0" if d.hex()[-1] != "0" else "1"),
    "hex, one character short": lambda b, d: d.hex()[:-1],
    "hex, half": lambda b, d: d.hex()[:32],
    "hex, one character long": lambda b, d: d.hex() + "0",
    "hex, twice": lambda b, d: d.hex() * 2,
    "base64, truncated": lambda b, d: base64.b64encode(d).decode()[:-4],
    "base64, case swapped": lambda b, d: base64.b64encode(d).decode().swapcase(),
    "urlsafe, truncated": lambda b, d: base64.urlsafe_b64encode(d).decode()[:40],
    "prefix only": lambda b, d: "sha256=",
    "empty": lambda b, d: "",
    "other prefix": lambda b, d: "sha1=" + d.hex(),
    "hex of sha256 of the body, no key": lambda b, d: hashlib.sha256(b).hexdigest(),
    "md5 hmac": lambda b, d: hmac.new(SECRET.encode(), b, hashlib.md5).hexdigest(),
    "secret with the last character changed": lambda b, d: digest(b, SECRET[:-1] + "x").hex(),
    "secret truncated": lambda b, d: digest(b, SECRET[:-1]).hex(),
    "secret in capitals": lambda b, d: digest(b, SECRET.upper()).hex(),
    "body with a trailing newline": lambda b, d: digest(b + b"\n").hex(),
    "the secret itself": lambda b, d: SECRET,
    "hex of the secret": lambda b, d: SECRET.encode().hex(),
    "base64 of the body's hex signature": lambda b, d: base64.b64encode(d.hex().encode()).decode(),
}


@pytest.fixture
def rules_folder(tmp_path: Path, sink: Sink) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(
        "targets:\n"
        f'  ops: "{sink.json_url("/ops")}"\n'
        "rules:\n"
        "  - name: team hears a number went live\n"
        "    match: {event: channel_live}\n"
        "    notify: [ops]\n"
    )
    return folder


@pytest.fixture
def auth_settings(
    make_settings: Callable[..., Settings], rules_folder: Path
) -> Callable[..., Settings]:
    def make(database_url: str, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": database_url,
            "rules_path": rules_folder,
            "d360_webhook_secret": f"{SECRET},{OLD_SECRET}",
            "admin_token": ADMIN,
            "delivery_retry_schedule": [0.2],
            "sweep_interval": 0.3,
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
async def app(
    auth_settings: Callable[..., Settings], sqlite_url: str, logs: LogCapture
) -> AsyncIterator[RunningApp]:
    async with running_app(auth_settings(sqlite_url)) as running:
        yield running
    assert troubles(logs.records) == []


async def stored(app: RunningApp, table: type[Event] | type[Delivery]) -> int:
    async with app.services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def post(app: RunningApp, body: bytes, signature: str | None) -> httpx.Response:
    headers = dict(JSON)
    if signature is not None:
        headers["x-360dialog-signature"] = signature
    return await app.client.post(WEBHOOK, content=body, headers=headers)


# --- webhook signatures ---------------------------------------------------------------------


async def test_a_genuine_signature_is_accepted_in_every_encoding_360dialog_might_use(
    app: RunningApp,
) -> None:
    for n, (name, encode) in enumerate(GOOD_ENCODINGS.items()):
        body = channel_live(n)
        response = await post(app, body, encode(digest(body)))
        assert response.status_code == 200, (name, response.text)
        assert response.json()["status"] == "accepted", name
    assert await stored(app, Event) == len(GOOD_ENCODINGS)


async def test_a_signature_made_with_the_previous_secret_is_accepted_during_rotation(
    app: RunningApp,
) -> None:
    body = channel_live(1)
    response = await post(app, body, digest(body, OLD_SECRET).hex())
    assert response.status_code == 200, response.text


async def test_a_wrong_or_mangled_signature_is_refused_and_nothing_is_stored(
    app: RunningApp,
) -> None:
    # One app for all the cases: starting one per case costs more than the cases.
    body = channel_live(7)
    for name, forge in BAD_SIGNATURES.items():
        response = await post(app, body, forge(body, digest(body)))
        assert response.status_code == 401, (name, response.text)
        assert_json_error(response)
        assert response.json()["error"] == "bad_signature", name
    assert await stored(app, Event) == 0


async def test_a_missing_signature_is_refused(app: RunningApp) -> None:
    response = await post(app, channel_live(1), None)
    assert response.status_code == 401
    assert response.json()["error"] == "missing_credentials"
    assert await stored(app, Event) == 0


async def test_a_signature_header_with_bytes_outside_ascii_is_refused_not_a_crash(
    app: RunningApp,
) -> None:
    body = channel_live(1)
    headers = [
        (b"content-type", b"application/json"),
        (b"x-360dialog-signature", digest(body).hex().encode()[:-2] + b"\xe9\xff"),
    ]
    response = await app.client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert_json_error(response)


async def test_the_signature_covers_the_exact_bytes_not_the_parsed_json(app: RunningApp) -> None:
    body = channel_live(1)
    reformatted = json.dumps(orjson.loads(body), indent=2).encode()
    response = await post(app, reformatted, digest(body).hex())
    assert response.status_code == 401, response.text


async def test_a_second_signature_header_cannot_rescue_a_bad_first_one(app: RunningApp) -> None:
    body = channel_live(1)
    headers = [
        (b"content-type", b"application/json"),
        (b"x-360dialog-signature", b"0" * 64),
        (b"x-360dialog-signature", digest(body).hex().encode()),
    ]
    response = await app.client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 401, response.text


async def test_a_shared_secret_header_is_no_way_around_the_signature_when_it_is_not_configured(
    app: RunningApp,
) -> None:
    body = channel_live(1)
    response = await app.client.post(
        WEBHOOK, content=body, headers={**JSON, "x-webhook-token": SECRET}
    )
    assert response.status_code == 401, response.text


SHARED_SECRET_HEADERS = [
    (SHARED, True),
    (f"Bearer {SHARED}", True),
    (SHARED[:-1] + "x", False),
    (SHARED[:-1], False),
    (SHARED + "x", False),
    (SHARED.upper(), False),
    (f"Basic {SHARED}", False),
    ("", False),
    ("Bearer", False),
]


async def test_the_shared_secret_header_must_match_exactly(
    auth_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = auth_settings(sqlite_url, d360_webhook_secret="", webhook_shared_secret=SHARED)
    async with running_app(settings) as app:
        for n, (value, accepted) in enumerate(SHARED_SECRET_HEADERS):
            before = await stored(app, Event)
            response = await app.client.post(
                WEBHOOK, content=channel_live(n), headers={**JSON, "x-webhook-token": value}
            )
            assert response.status_code == (200 if accepted else 401), (value, response.text)
            assert await stored(app, Event) == before + (1 if accepted else 0), value


async def test_refusals_never_log_the_signature_or_secret_they_were_given(
    app: RunningApp, logs: LogCapture
) -> None:
    body = channel_live(1)
    near_miss = digest(body, SECRET[:-1] + "x").hex()
    await post(app, body, near_miss)
    await app.client.post(WEBHOOK, content=body, headers={**JSON, "x-webhook-token": SECRET})
    await app.flush_writer()  # stores the refusal samples now (else within a second)
    text = "\n".join(rendered(record) for record in logs.records)
    for needle in (near_miss, SECRET, SECRET[:-1], digest(body).hex()):
        assert needle not in text


# --- replayed webhooks --------------------------------------------------------------------


async def test_a_replayed_signed_webhook_is_deduplicated_and_notifies_nobody_again(
    auth_settings: Callable[..., Settings], database_url: str, sink: Sink, logs: LogCapture
) -> None:
    body = channel_live(42)
    async with running_app(auth_settings(database_url)) as app:
        first = await post(app, body, digest(body).hex())
        assert first.status_code == 200
        assert first.json()["status"] == "accepted"
        await sink.state.wait_for(1)
        await settle(app)

        # The attacker (or 360dialog's retry) sends the very same signed request again, in
        # another signature encoding, and re-serialised with a fresh signature.
        reformatted = json.dumps(orjson.loads(body), indent=4, sort_keys=True).encode()
        replays = [
            (body, digest(body).hex()),
            (body, "sha256=" + base64.b64encode(digest(body)).decode()),
            (reformatted, digest(reformatted).hex().upper()),
        ]
        for replayed, signature in replays:
            response = await post(app, replayed, signature)
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer == {"status": "duplicate", "event_id": first.json()["event_id"]}
        await settle(app)
        await app.run_to_idle()  # the sweeps a timer would run: anything queued would have gone

        assert len(sink.state.received) == 1
        assert await stored(app, Event) == 1
        assert await stored(app, Delivery) == 1
    assert troubles(logs.records) == []


async def test_a_burst_of_the_same_signed_webhook_is_stored_and_notified_once(
    auth_settings: Callable[..., Settings], database_url: str, sink: Sink
) -> None:
    document = orjson.loads(channel_live(1))
    del document["id"]  # keyed by its content, not by a delivery id
    body = orjson.dumps(document)
    async with running_app(auth_settings(database_url)) as app:
        answers = await asyncio.gather(*(post(app, body, digest(body).hex()) for _ in range(12)))
        assert [a.status_code for a in answers] == [200] * 12
        statuses = sorted(a.json()["status"] for a in answers)
        assert statuses == ["accepted"] + ["duplicate"] * 11
        assert len({a.json()["event_id"] for a in answers}) == 1
        await sink.state.wait_for(1)
        await settle(app)
        await app.run_to_idle()
        assert len(sink.state.received) == 1
        assert await stored(app, Delivery) == 1


# --- the admin API --------------------------------------------------------------------------

REFUSED_401 = {
    "empty bearer": "Bearer ",
    "bearer without a token": "Bearer",
    "bearer with blanks": "Bearer    ",
    "empty header": "",
    "token without a scheme": ADMIN,
    "token scheme": f"Token {ADMIN}",
    "basic with the token as password": "Basic "
    + base64.b64encode(f"admin:{ADMIN}".encode()).decode(),
    "basic with the token": f"Basic {ADMIN}",
    "tab instead of a space": f"Bearer\t{ADMIN}",
    "bearer glued to the token": f"Bearer{ADMIN}",
}
REFUSED_403 = {
    "last character changed": f"Bearer {ADMIN[:-1]}{'x' if ADMIN[-1] != 'x' else 'y'}",
    "last character dropped": f"Bearer {ADMIN[:-1]}",
    "first character changed": f"Bearer x{ADMIN[1:]}",
    "in capitals": f"Bearer {ADMIN.upper()}",
    "twice": f"Bearer {ADMIN}{ADMIN}",
    "token then junk": f"Bearer {ADMIN} extra",
    "quoted": f'Bearer "{ADMIN}"',
    "base64 of the token": f"Bearer {base64.b64encode(ADMIN.encode()).decode()}",
}


async def test_the_admin_api_answers_401_without_a_usable_bearer_token(app: RunningApp) -> None:
    for name, value in REFUSED_401.items():
        header = [(b"authorization", value.encode())]
        response = await raw_request(app.url, "GET", "/admin/events", header)
        assert response.status_code == 401, (name, response.text)
        assert_json_error(response)
        assert response.headers["www-authenticate"].startswith("Bearer"), name


async def test_the_admin_api_answers_403_to_a_token_that_is_almost_right(app: RunningApp) -> None:
    for name, value in REFUSED_403.items():
        response = await app.client.get("/admin/events", headers={"authorization": value})
        assert response.status_code == 403, (name, response.text)
        assert response.json() == {"error": "forbidden", "detail": "the admin token is not valid"}


async def test_the_bearer_scheme_is_case_insensitive(app: RunningApp) -> None:
    for scheme in ("bearer", "BEARER", "Bearer", "bEaReR"):
        headers = {"authorization": f"{scheme} {ADMIN}"}
        response = await app.client.get("/admin/events", headers=headers)
        assert response.status_code == 200, (scheme, response.text)


async def test_a_token_with_bytes_outside_ascii_is_refused_not_a_crash(app: RunningApp) -> None:
    headers = [(b"authorization", b"Bearer " + ADMIN.encode()[:-1] + b"\xe9")]
    response = await app.client.get("/admin/events", headers=headers)
    assert response.status_code == 403, response.text


async def test_the_token_is_only_read_from_the_authorization_header(app: RunningApp) -> None:
    for params, headers in (
        ({"token": ADMIN}, {}),
        ({"access_token": ADMIN}, {}),
        ({}, {"cookie": f"token={ADMIN}"}),
        ({}, {"x-admin-token": ADMIN}),
        ({}, {"x-api-key": ADMIN}),
    ):
        response = await app.client.get("/admin/events", params=params, headers=headers)
        assert response.status_code == 401, (params, headers, response.text)


async def test_a_second_authorization_header_cannot_rescue_a_wrong_first_one(
    app: RunningApp,
) -> None:
    headers = [
        (b"authorization", b"Bearer wrong"),
        (b"authorization", f"Bearer {ADMIN}".encode()),
    ]
    response = await app.client.get("/admin/events", headers=headers)
    assert response.status_code in (401, 403), response.text


async def test_guessing_admin_tokens_logs_the_refusals_but_never_the_guesses(
    app: RunningApp, logs: LogCapture
) -> None:
    guesses = [ADMIN[:-1] + c for c in "abcdefgh" if ADMIN[:-1] + c != ADMIN]
    for guess in guesses:
        response = await app.client.post(
            "/admin/rules/reload", headers={"authorization": f"Bearer {guess}"}
        )
        assert response.status_code == 403
    refusals = [r for r in logs.records if r.getMessage() == "admin request refused"]
    assert len(refusals) == len(guesses)
    text = "\n".join(rendered(record) for record in logs.records)
    assert ADMIN[:-1] not in text
