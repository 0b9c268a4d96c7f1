"""Webhook authentication: 360dialog's HMAC signature, or a static shared-secret header.

`x-360dialog-signature` is HMAC-SHA256 of the raw body keyed with the platform secret. The
encoding is undocumented, so hex and base64 (standard or URL-safe, with or without padding)
are accepted, optionally prefixed `sha256=`. Several secrets may be active during rotation.
Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Verification(StrEnum):
    SIGNATURE = "signature"
    SHARED_SECRET = "shared_secret"
    NONE = "none"  # no authentication configured: accepted, and said so loudly


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    verification: Verification
    reason: str | None = None  # why it failed: a short, bounded label for metrics and rows


def _decode_signature(value: str) -> bytes | None:
    value = value.strip()
    if value.lower().startswith("sha256="):
        value = value[len("sha256=") :]
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    padded = value + "=" * (-len(value) % 4)
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decoder(padded.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
        if len(raw) == hashlib.sha256().digest_size:
            return raw
    return None


def signature_matches(body: bytes, signature: str, secrets: Sequence[bytes]) -> bool:
    """True when `signature` is HMAC-SHA256(body) under any of `secrets`."""
    given = _decode_signature(signature)
    if given is None:
        return False
    matched = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        # No early exit: every secret is tried, so timing does not tell which one matched.
        matched |= hmac.compare_digest(expected, given)
    return matched


def shared_secret_matches(value: str, secrets: Sequence[bytes]) -> bool:
    candidate = value.strip()
    if candidate.lower().startswith("bearer "):
        candidate = candidate[len("bearer ") :].strip()
    given = candidate.encode("utf-8", "surrogateescape")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(secret, given)
    return matched


def authenticate(
    *,
    body: bytes,
    signature: str | None,
    shared_secret: str | None,
    signing_secrets: Sequence[bytes],
    shared_secrets: Sequence[bytes],
) -> AuthResult:
    """Decide whether a webhook request is authentic (pure)."""
    if not signing_secrets and not shared_secrets:
        return AuthResult(ok=True, verification=Verification.NONE)
    if signing_secrets and signature is not None:
        if signature_matches(body, signature, signing_secrets):
            return AuthResult(ok=True, verification=Verification.SIGNATURE)
        if not (shared_secrets and shared_secret is not None):
            return AuthResult(ok=False, verification=Verification.NONE, reason="bad_signature")
    if shared_secrets and shared_secret is not None:
        if shared_secret_matches(shared_secret, shared_secrets):
            return AuthResult(ok=True, verification=Verification.SHARED_SECRET)
        return AuthResult(ok=False, verification=Verification.NONE, reason="bad_shared_secret")
    if signature is not None:
        return AuthResult(ok=False, verification=Verification.NONE, reason="bad_signature")
    return AuthResult(ok=False, verification=Verification.NONE, reason="missing_credentials")


def sign(body: bytes, secret: bytes) -> str:
    """Hex signature as 360dialog would send it (used by `send-test` and the tests)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()
