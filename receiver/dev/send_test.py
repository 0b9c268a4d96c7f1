"""`hub-receiver send-test EVENT`: post a sample event to a running instance, signed if set up."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from receiver.ingest.signature import sign

SAMPLES = Path(__file__).resolve().parent / "samples"
# Only authenticated webhooks reach clients, so `dev`'s service checks signatures with this
# secret when none is configured, and `send-test` signs with it when it knows no other.
DEV_WEBHOOK_SECRET = "hub-receiver-dev"


def available() -> list[str]:
    return sorted(
        p.name.removeprefix("partner_webhook.").removesuffix(".json")
        for p in SAMPLES.glob("*.json")
    )


def sample_body(event: str, *, keep_id: bool = False, channel: str | None = None) -> bytes:
    path = SAMPLES / f"partner_webhook.{event}.json"
    if not path.exists():
        raise ValueError(f"no sample for {event!r}; choose one of: {', '.join(available())}")
    body: dict[str, Any] = orjson.loads(path.read_bytes())
    if not keep_id:
        body["id"] = str(uuid.uuid4())  # a fresh delivery, so dedup does not swallow it
    if channel is not None and isinstance(body.get("data"), dict):
        body["data"]["id"] = channel
    return orjson.dumps(body)


class SendTestError(Exception):
    """The instance could not be reached; the message says where and why."""


def post(
    *,
    base_url: str,
    body: bytes,
    signing_secret: str | None,
    shared_secret: str | None,
    shared_secret_header: str,
    timeout: float = 10.0,
) -> httpx.Response:
    headers = {"content-type": "application/json", "user-agent": "hub-receiver send-test"}
    if signing_secret:
        headers["x-360dialog-signature"] = sign(body, signing_secret.encode())
    elif shared_secret:
        headers[shared_secret_header] = shared_secret
    url = f"{base_url.rstrip('/')}/webhooks/partner"
    try:
        return httpx.post(url, content=body, headers=headers, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # Connection refused, timed out, a URL that is not http(s): say where and why in one
        # line, never with a traceback.
        reason = str(exc) or type(exc).__name__
        raise SendTestError(
            f"cannot post to {url}: {reason} (is `hub-receiver serve` or `dev` running there?)"
        ) from None
