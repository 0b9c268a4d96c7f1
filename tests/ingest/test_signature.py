"""Webhook authentication (360dialog.md §1): HMAC signature in any plausible encoding, or a
shared-secret header; a pure function, table-tested."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from receiver.ingest.signature import AuthResult, Verification, authenticate, sign

BODY = b'{"event":"channel_live","data":{"id":"kJ2mQ8CH"}}'
SECRET = b"platform-secret-1"
NEW_SECRET = b"platform-secret-2"


def digest(body: bytes = BODY, secret: bytes = SECRET) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).digest()


def check(
    *,
    signature: str | None = None,
    shared_secret: str | None = None,
    signing: tuple[bytes, ...] = (SECRET,),
    shared: tuple[bytes, ...] = (),
    body: bytes = BODY,
) -> AuthResult:
    return authenticate(
        body=body,
        signature=signature,
        shared_secret=shared_secret,
        signing_secrets=signing,
        shared_secrets=shared,
    )


GOOD_ENCODINGS = {
    "hex": digest().hex(),
    "upper hex": digest().hex().upper(),
    "hex with sha256= prefix": "sha256=" + digest().hex(),
    "hex with SHA256= prefix": "SHA256=" + digest().hex(),
    "hex with surrounding spaces": f"  {digest().hex()} ",
    "base64": base64.b64encode(digest()).decode(),
    "base64 without padding": base64.b64encode(digest()).decode().rstrip("="),
    "urlsafe base64": base64.urlsafe_b64encode(digest()).decode(),
    "urlsafe base64 without padding": base64.urlsafe_b64encode(digest()).decode().rstrip("="),
    "base64 with sha256= prefix": "sha256=" + base64.b64encode(digest()).decode(),
}


@pytest.mark.parametrize("signature", GOOD_ENCODINGS.values(), ids=GOOD_ENCODINGS.keys())
def test_it_accepts_a_good_signature_in_any_encoding(signature: str) -> None:
    assert check(signature=signature) == AuthResult(ok=True, verification=Verification.SIGNATURE)


def body_whose_digest_needs_urlsafe_characters() -> bytes:
    for n in range(100):
        body = BODY + b" " * n
        if set(base64.b64encode(digest(body)).decode()) & {"+", "/"}:
            return body
    raise AssertionError("no body with '+' or '/' in its base64 digest")


def test_it_accepts_urlsafe_base64_that_uses_dash_and_underscore() -> None:
    body = body_whose_digest_needs_urlsafe_characters()
    urlsafe = base64.urlsafe_b64encode(digest(body)).decode()
    assert set(urlsafe) & {"-", "_"}
    assert check(body=body, signature=urlsafe).ok
    assert check(body=body, signature=urlsafe.rstrip("=")).ok
    assert check(body=body, signature=base64.b64encode(digest(body)).decode()).ok


def test_it_accepts_the_signature_sign_produces() -> None:
    assert check(signature=sign(BODY, SECRET)).verification is Verification.SIGNATURE


BAD_SIGNATURES = {
    "other secret": digest(secret=b"someone-else").hex(),
    "other body": digest(body=BODY + b" ").hex(),
    "truncated hex": digest().hex()[:-1],
    "half a hex digest": digest().hex()[:32],
    "truncated base64": base64.b64encode(digest()).decode()[:-4],
    "empty": "",
    "prefix only": "sha256=",
    "not an encoding": "not-a-signature!!",
    "non-ascii": "sha256=é" * 8,
    "md5-sized": hashlib.md5(BODY).hexdigest(),  # noqa: S324 - a wrong-length digest on purpose
}


@pytest.mark.parametrize("signature", BAD_SIGNATURES.values(), ids=BAD_SIGNATURES.keys())
def test_it_refuses_a_bad_signature(signature: str) -> None:
    result = check(signature=signature)
    assert not result.ok
    assert result.reason == "bad_signature"


def test_it_refuses_a_missing_signature_when_a_platform_secret_is_configured() -> None:
    result = check(signature=None)
    assert not result.ok
    assert result.reason == "missing_credentials"


def test_it_accepts_either_secret_while_they_are_rotated() -> None:
    both = (SECRET, NEW_SECRET)
    assert check(signature=digest(secret=SECRET).hex(), signing=both).ok
    assert check(signature=digest(secret=NEW_SECRET).hex(), signing=both).ok
    assert not check(signature=digest(secret=b"retired").hex(), signing=both).ok


def test_it_accepts_the_shared_secret_header_plain_or_as_a_bearer_token() -> None:
    for value in ("s3cret-token", "Bearer s3cret-token", "bearer  s3cret-token ", " s3cret-token"):
        result = check(shared_secret=value, signing=(), shared=(b"s3cret-token",))
        assert result == AuthResult(ok=True, verification=Verification.SHARED_SECRET), value


def test_it_refuses_a_wrong_or_missing_shared_secret() -> None:
    wrong = check(shared_secret="Bearer guess", signing=(), shared=(b"s3cret-token",))
    assert (wrong.ok, wrong.reason) == (False, "bad_shared_secret")
    missing = check(shared_secret=None, signing=(), shared=(b"s3cret-token",))
    assert (missing.ok, missing.reason) == (False, "missing_credentials")


def test_it_accepts_a_rotated_shared_secret() -> None:
    shared = (b"old-token", b"new-token")
    assert check(shared_secret="new-token", signing=(), shared=shared).ok
    assert check(shared_secret="old-token", signing=(), shared=shared).ok


def test_a_good_shared_secret_admits_a_request_whose_signature_is_bad() -> None:
    # Both configured: the header is the fallback for accounts whose signing is off or odd.
    result = check(
        signature="bad", shared_secret="s3cret-token", signing=(SECRET,), shared=(b"s3cret-token",)
    )
    assert result.verification is Verification.SHARED_SECRET


def test_a_good_signature_is_enough_when_both_are_configured() -> None:
    result = check(signature=digest().hex(), signing=(SECRET,), shared=(b"s3cret-token",))
    assert result.verification is Verification.SIGNATURE


def test_it_accepts_everything_as_none_when_nothing_is_configured() -> None:
    for signature in (None, "garbage", digest().hex()):
        result = check(signature=signature, shared_secret="anything", signing=(), shared=())
        assert result == AuthResult(ok=True, verification=Verification.NONE)
