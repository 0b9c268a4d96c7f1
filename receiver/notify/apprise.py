"""Send one notification through Apprise and say plainly how it went.

This is the only module that imports apprise. Nothing here raises for a failed send:
`send()` returns a `SendResult` whose `permanent` flag tells the caller whether another
attempt could help. Retries belong to the caller (the delivery row and the job queue), so
Apprise's own per-URL retry is forced to 0.

Secrets: Apprise URLs carry tokens and passwords, and the path of a generic target
(`json://host/SECRET`, an ntfy topic) is often the secret itself. Only masked forms leave
this module, in results and in log records: while this module talks to Apprise, a filter on
the `apprise` logger rewrites every record so the raw URL and its secret parts never appear.

Email recipients are checked with email-validator before Apprise sees them: Apprise
silently drops an address it cannot parse and then fails the send as if it might pass
later, so a bad address would be retried for hours instead of being named once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import functools
import logging
import re
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import apprise
import requests
from apprise.plugins.custom_json import NotifyJSON
from email_validator import EmailNotValidError, validate_email

with warnings.catch_warnings():
    # Apprise 2.3 loads its email plugin lazily, on the first URL it parses; that imports
    # the stdlib `imghdr` (for PGPy), deprecated on Python 3.11-3.12. Import it here, once,
    # with only that warning silenced, so it cannot surface mid-send (our tests turn
    # warnings into errors, which made every first send fail).
    warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
    import apprise.utils.pgp


def configure_concurrency(max_sends: int) -> None:
    """Let up to `max_sends` notifications be in flight at once in this process.

    Apprise 2 runs blocking sends on two module-level thread pools sized by
    ThreadPoolExecutor's default (cpu count + 4: six threads on a 2-core machine), which
    capped a worker at ~45 deliveries/s whatever WORKER_MAX_JOBS said (bench/RESULTS.md).
    Apprise exposes no setting for them, so they are set here, once, at start-up.
    """
    import concurrent.futures  # noqa: PLC0415 - only needed here

    from apprise import apprise as apprise_module  # noqa: PLC0415

    with apprise_module._shared_executor_lock:
        apprise_module._shared_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_sends, thread_name_prefix="apprise-send"
        )
    with apprise_module._coordinator_executor_lock:
        apprise_module._coordinator_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_sends, thread_name_prefix="apprise-batch"
        )


__all__ = [
    "SendResult",
    "client_email_url",
    "client_email_url_problem",
    "configure_concurrency",
    "mask",
    "send",
    "validate_target",
]

_MASK = "****"

# Apprise's own deadline for a call gets this much slack before our outer wait_for gives up,
# so Apprise normally reports TIMEOUT itself (with its logs) rather than being cancelled.
_OUTER_GRACE_SECONDS = 1.0

# Most Apprise HTTP plugins (166 of 191 in 2.3, json:// among them) report an HTTP failure
# only as a WARNING log line ending in "error=<status>." -- the result object has a status
# (FAILURE) but no response code. The code in that line is the only signal there is.
_HTTP_STATUS_IN_LOG = re.compile(r"\berror=(\d{3})\b")
# 4xx answers that say "later" rather than "never".
_TRANSIENT_4XX = frozenset({408, 425, 429})

# Keys the json:// plugin already puts in its payload; a payload extra with one of these
# names would rename or drop that field instead of adding one.
_JSON_RESERVED_KEYS = frozenset({"version", "title", "message", "attachments", "type"})

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://")
# Query keys Apprise passes through verbatim: +header, -GET param, :payload extra.
# `url(privacy=True)` leaves their values in clear text, so mask() hides them.
_PASSTHROUGH_PREFIXES = ("+", "-", ":")
_URL_DELIMITERS = re.compile(r"[/:@?&=#+,;\s]+")
_MIN_SECRET_LENGTH = 3

_EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
# How Apprise splits a list of addresses (apprise.utils.parse.STRING_DELIMITERS), less
# the brackets: `a[x]@b.com` is checked whole, so the reason names the brackets.
_ADDRESS_DELIMITERS = re.compile(r"[;,\s]+")
_NAMED_ADDRESS = re.compile(r"<([^<>]*)>\s*$")
_RECIPIENT_KEYS = frozenset({"to", "cc", "bcc"})


@dataclass(frozen=True)
class SendResult:
    ok: bool
    permanent: bool
    error: str | None
    target: str


# --- Keeping secrets out of logs -------------------------------------------------------


@dataclass
class _Redaction:
    """What to hide in Apprise's log records while one of our calls runs."""

    secrets: list[tuple[str, str]]
    # Collect (already scrubbed) messages; drop them from logging instead of emitting.
    silent: bool = False
    collected: list[str] = field(default_factory=list)

    def scrub(self, text: str) -> str:
        for secret, replacement in self.secrets:
            text = text.replace(secret, replacement)
        return text


# Apprise runs plugin sends in worker threads submitted with a copy of the caller's
# context, so records logged there see the same redaction as the calling task.
_redaction: contextvars.ContextVar[_Redaction | None] = contextvars.ContextVar(
    "receiver_delivery_redaction", default=None
)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        redaction = _redaction.get()
        if redaction is None:
            return True
        message = redaction.scrub(record.getMessage())
        record.msg, record.args = message, None
        if redaction.silent:
            redaction.collected.append(message)
            return False
        return True


_FILTER = _RedactingFilter()


def _guard_apprise_logger() -> None:
    # Every Apprise module logs through the one "apprise" logger, so a filter there sees
    # all of its records before any handler (Apprise's result capture, caplog, ours).
    # DEBUG records print URLs and request details; they are never created here.
    apprise_logger = logging.getLogger(apprise.LOGGER_NAME)
    if _FILTER not in apprise_logger.filters:
        apprise_logger.addFilter(_FILTER)
    if apprise_logger.getEffectiveLevel() < logging.INFO:
        apprise_logger.setLevel(logging.INFO)


def _secret_parts(url: str, masked: str) -> list[tuple[str, str]]:
    """Pieces of `url` that Apprise's (or our) masking hid, longest first."""
    visible = unquote(masked)
    pieces = {url, unquote(url)}
    for raw in _URL_DELIMITERS.split(url):
        pieces.update((raw, unquote(raw)))
    secrets = {
        piece
        for piece in pieces
        if len(piece) >= _MIN_SECRET_LENGTH and piece not in visible and piece not in masked
    }
    # A password is hidden even when it happens to read like something visible.
    with contextlib.suppress(ValueError):
        password = urlsplit(url).password
        if password:
            secrets.update(p for p in (password, unquote(password)) if p)
    ordered = sorted(secrets, key=len, reverse=True)
    return [(s, masked if s in (url, unquote(url)) else _MASK) for s in ordered]


@contextlib.contextmanager
def _redacting(url: str, masked: str, *, silent: bool) -> Iterator[_Redaction]:
    _guard_apprise_logger()
    redaction = _Redaction(_secret_parts(url, masked), silent=silent)
    token = _redaction.set(redaction)
    try:
        yield redaction
    finally:
        _redaction.reset(token)


# --- Masking and validation -----------------------------------------------------------


def _fallback_mask(url: str) -> str:
    match = _SCHEME.match(url) if isinstance(url, str) else None
    return f"{match.group(1).lower()}://***" if match else "***"


def _mask_passthrough_values(privacy_url: str) -> str:
    base, sep, query = privacy_url.partition("?")
    if not sep:
        return privacy_url
    parts = []
    for item in query.split("&"):
        key, eq, _value = item.partition("=")
        hidden = eq and unquote(key).startswith(_PASSTHROUGH_PREFIXES)
        parts.append(f"{key}={_MASK}" if hidden else item)
    return f"{base}?{'&'.join(parts)}"


def _mask_path(privacy_url: str, url: str) -> str:
    """Hide each path segment of `privacy_url` that Apprise left readable.

    Apprise's privacy form abbreviates the tokens it knows about (`T...Q` in a Slack URL)
    but prints the path of generic targets verbatim (json://host/SECRET, an ntfy topic,
    email recipients), and there the path is often the secret.
    """
    try:
        parts = urlsplit(privacy_url)
    except ValueError:
        return _fallback_mask(url)
    segments = [
        segment if _abbreviated(segment, url) else _MASK for segment in parts.path.split("/")
    ]
    return urlunsplit(parts._replace(path="/".join(segments)))


def _abbreviated(segment: str, url: str) -> bool:
    # Apprise shows a known token as `T...Q`; a raw path that itself reads so is not one.
    return not segment or segment == _MASK or ("..." in segment and segment not in url)


def _instantiate(url: str, asset: apprise.AppriseAsset) -> tuple[Any, str, list[str]]:
    """Load `url` with Apprise logging silenced; return (plugin or None, mask, reasons)."""
    fallback = _fallback_mask(url)
    with _redacting(url, fallback, silent=True) as redaction:
        # Typed loosely on purpose: NotifyBase's methods are unannotated upstream.
        plugin: Any = apprise.Apprise.instantiate(url, asset=asset)
    if plugin is None:
        return None, fallback, redaction.collected
    masked = _mask_path(_mask_passthrough_values(str(plugin.url(privacy=True))), url)
    return plugin, masked, []


@functools.lru_cache(maxsize=256)
def mask(url: str) -> str:
    """Return `url` in a form safe to display and log. Never raises.

    Cached: every delivery row shows its target's mask, and loading the URL through Apprise
    to mask it cost ~7 % of a worker's event-loop time.
    """
    try:
        _plugin, masked, _reasons = _instantiate(url, apprise.AppriseAsset())
    except Exception:  # noqa: BLE001 -- a display helper must not fail; fall back to less
        return _fallback_mask(url)
    return masked


def _load_error(url: str, masked: str, reasons: list[str]) -> str:
    message = f"{masked}: Apprise cannot load this URL (bad syntax or unsupported service)"
    # Apprise's reasons were scrubbed while logged, but the fallback mask hides little,
    # so scrub them again against every piece of the raw URL.
    detail = "; ".join(
        dict.fromkeys(_Redaction(_secret_parts(url, masked)).scrub(r) for r in reasons)
    )
    return f"{message}: {detail}" if detail else message


def validate_target(url: str) -> str | None:
    """Return why `url` cannot be used as a target (naming no secret), or None."""
    if not isinstance(url, str) or not url.strip():
        return "target URL is empty"
    try:
        plugin, masked, reasons = _instantiate(url, apprise.AppriseAsset())
    except Exception as exc:  # noqa: BLE001 -- see send(): Apprise itself failed
        return f"{_fallback_mask(url)}: Apprise raised {type(exc).__name__} loading this URL"
    if plugin is None:
        return _load_error(url, masked, reasons)
    problem = _recipient_problem(url)
    return f"{masked}: {problem}" if problem else None


def _address_problem(address: str) -> str | None:
    """Why Apprise cannot send to `address` (the validator's reason), or None."""
    try:
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return f"invalid email address: {exc}"
    if checked.ascii_email != address:
        # Valid, but Apprise only takes the ASCII form (IDNA for the domain): full-width
        # or other non-ASCII domains are dropped without a word.
        return f"invalid email address: write it as {checked.ascii_email}"
    return None


def _recipient_problem(url: str) -> str | None:
    """For a mailto:// or mailtos:// URL, why one of its recipients cannot be used."""
    match = _SCHEME.match(url)
    if match is None or match.group(1).lower() not in _EMAIL_SCHEMES:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None  # Apprise's own loading reports a URL it cannot read
    values = [unquote(segment) for segment in parts.path.split("/") if segment]
    for item in parts.query.split("&"):
        key, _eq, value = item.partition("=")
        if unquote(key).lower() in _RECIPIENT_KEYS:
            values.append(unquote(value))
    for value in values:
        for piece in _split_addresses(value):
            problem = _address_problem(piece)
            if problem:
                return problem
    return None


def _split_addresses(value: str) -> list[str]:
    named = _NAMED_ADDRESS.search(value)
    if named:  # "Ops Team <ops@example.com>": one address with a display name
        return [named.group(1).strip()]
    return [piece for piece in _ADDRESS_DELIMITERS.split(value) if piece]


def client_email_url_problem(mail_url: str) -> str | None:
    """Why `mail_url` cannot serve as CLIENT_EMAIL_URL (naming no secret), or None."""
    try:
        sample = client_email_url(mail_url, "client@example.com")
    except ValueError as exc:
        return str(exc)
    return validate_target(sample)


def client_email_url(mail_url: str, recipient: str) -> str:
    """Return `mail_url` (a recipient-less mailto:// or mailtos:// URL) sending to `recipient`."""
    parts = urlsplit(mail_url)
    if parts.scheme.lower() not in ("mailto", "mailtos"):
        raise ValueError(
            f"client email URL must be mailto:// or mailtos://, not {_fallback_mask(mail_url)}"
        )
    if parts.path.strip("/"):
        # Apprise sends to every address in the path too: a client email must reach the
        # client alone, so the base URL may name no recipient of its own.
        raise ValueError("client email URL must not name recipients in its path")
    address = recipient.strip()
    # Apprise splits `to=` on commas, semicolons and spaces: one address must stay one.
    if address.count("@") != 1 or re.search(r"[\s,;<>\"]", address) or "\x00" in address:
        raise ValueError("client email recipient is not a single email address")
    # Apprise only sends to the ASCII form (a full-width or IDN domain is dropped); an
    # address the validator refuses stays as it is, for send() to fail it permanently
    # with the validator's reason.
    with contextlib.suppress(EmailNotValidError):
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
        address = checked.ascii_email or address
    query = [
        item
        for item in parts.query.split("&")
        if item and unquote(item.partition("=")[0]).lower() != "to"
    ]
    query.append(f"to={quote(address, safe='')}")
    return urlunsplit(parts._replace(query="&".join(query)))


# --- Sending -------------------------------------------------------------------------


def _classify(result: Any, masked: str, scrub: _Redaction) -> SendResult:
    status = result.status
    if status == apprise.AppriseResultStatus.SUCCESS:
        return SendResult(ok=True, permanent=False, error=None, target=masked)
    logs = [scrub.scrub(entry.message) for entry in result.logs()]
    reason = "; ".join(dict.fromkeys(logs)) or "no reason given"
    if status == apprise.AppriseResultStatus.NOMATCH:
        return _failure(masked, permanent=True, error=f"no service matched: {reason}")
    if status == apprise.AppriseResultStatus.TIMEOUT:
        return _failure(masked, permanent=False, error=f"timed out: {reason}")
    if len(result) == 0:
        # FAILURE before any service ran: Apprise rejected the message itself.
        return _failure(masked, permanent=True, error=f"message rejected: {reason}")
    codes = [int(code) for line in logs for code in _HTTP_STATUS_IN_LOG.findall(line)]
    permanent = bool(codes) and all(400 <= c < 500 and c not in _TRANSIENT_4XX for c in codes)
    # Anything else (5xx, connection errors, SMTP refusals whose codes Apprise logs
    # only at DEBUG) may pass on a later attempt.
    return _failure(masked, permanent=permanent, error=f"{status.name.lower()}: {reason}")


def _failure(target: str, *, permanent: bool, error: str) -> SendResult:
    return SendResult(ok=False, permanent=permanent, error=error, target=target)


def _add_metadata(plugin: Any, metadata: Mapping[str, str] | None) -> None:
    # json:// puts `:key=value` URL extras into its JSON body (`payload_extras`); we add
    # ours to the loaded plugin so they never show in the masked target. A URL's own
    # extras win, and keys the payload already has are skipped (an extra with that name
    # would rename or drop the field). Other services have no generic place for them.
    if not metadata or not isinstance(plugin, NotifyJSON):
        return
    extras: dict[str, str] = plugin.payload_extras
    taken = _JSON_RESERVED_KEYS | set(extras) | set(extras.values())
    for key, value in metadata.items():
        if key not in taken:
            extras[key] = value


def _bound_plugin(plugin: Any, timeout: float) -> None:
    # One retry layer only: ours. A `?retry=N` in a configured URL is ignored.
    plugin.retry = 0
    # `cto`/`rto` (HTTP: 4 s each by default; SMTP uses the connect timeout for every
    # socket operation, 15 s by default). An abandoned send keeps running in Apprise's
    # worker thread until these fire, so they must not outlive the call.
    plugin.socket_connect_timeout = min(float(plugin.socket_connect_timeout), timeout)
    plugin.socket_read_timeout = min(float(plugin.socket_read_timeout), timeout)


@dataclass(frozen=True)
class _Loaded:
    """A target URL as Apprise loaded it, with what sending to it needs; shared by sends."""

    plugin: Any  # None when Apprise cannot load the URL
    masked: str
    problem: str | None  # why nothing can be sent to it (permanent), or None
    secrets: list[tuple[str, str]]
    asset: apprise.AppriseAsset


# Loading a URL costs ~0.3 ms of CPU (Apprise's parser, the masked form, the secret
# pieces): once per target instead of once per send. Keyed by the exact URL (and the
# timeout bound into the plugin), so a target never sends with another target's object.
_LOADED_MAX = 512


@functools.lru_cache(maxsize=_LOADED_MAX)
def _load(url: str, timeout: float) -> _Loaded:
    """Load `url` for sending (raises when Apprise itself fails: that is not cached)."""
    asset = apprise.AppriseAsset(service_timeout=timeout)
    plugin, masked, reasons = _instantiate(url, asset)
    if plugin is None:
        return _Loaded(None, masked, _load_error(url, masked, reasons), [], asset)
    _bound_plugin(plugin, timeout)
    return _Loaded(plugin, masked, _recipient_problem(url), _secret_parts(url, masked), asset)


def _fresh_copy(plugin: Any) -> Any:
    """A plugin of its own for one send: Apprise keeps state on the object between sends
    (the time of its last send, which it throttles on: 5.5 s between two emails through
    one object), and we add per-send payload extras. Its top-level containers are copied
    too, so nothing one send changes reaches the next."""
    clone = copy.copy(plugin)
    for name, value in vars(plugin).items():
        if isinstance(value, list | dict | set):
            setattr(clone, name, copy.copy(value))
    return clone


# --- Email: one TLS context per process -----------------------------------------------

# `ssl.create_default_context()` reads the system's CA bundle: ~8 % of a worker's CPU when
# Apprise's SMTP controller built one per email. It is looked up through the module's `ssl`
# name, so that name is given a stand-in whose `create_default_context()` hands out one
# shared context (safe to use from many threads; smtplib only reads it). Which one the
# controller gets is set per send, from the plugin's verify flag: the controller switches
# checking off on the context it got when the URL says `verify=no`.
_tls_verify: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "receiver_smtp_tls_verify", default=None
)


class _SharedTLS:
    def __init__(self) -> None:
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)

    def create_default_context(self, *args: Any, **kwargs: Any) -> ssl.SSLContext:
        verify = _tls_verify.get()
        if args or kwargs or verify is None:  # not one of our sends: as Apprise would
            return ssl.create_default_context(*args, **kwargs)
        with self._lock:
            context = self._contexts.get(verify)
            if context is None:
                context = self._contexts[verify] = ssl.create_default_context()
                if not verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
            return context


_SHARED_TLS = _SharedTLS()


def _share_smtp_tls() -> None:
    from apprise.plugins.email import smtp  # noqa: PLC0415 - Apprise's lazily loaded plugin

    smtp.ssl = _SHARED_TLS  # type: ignore[attr-defined,assignment]


_share_smtp_tls()


# --- HTTP: keep-alive connections per sending thread ----------------------------------

# Apprise's HTTP plugins call `requests.post()` and the like, which build a Session and a
# new connection for every send: opening and closing it was ~13 % of a busy worker's
# samples (py-spy, bench/RESULTS.md section 9). While one of our sends runs, those module
# functions use a Session kept per sending thread (Sessions are not thread-safe), so a
# target's connection is reused from one send to the next (urllib3 notices one the target
# closed and opens another before sending). Cookies are
# dropped after every request, as a Session per call dropped them; anything else that
# calls `requests` in this process (not a send of ours) gets the library's own functions.
_pooled_http: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "receiver_pooled_http", default=False
)
_sessions = threading.local()
_REQUESTS_FUNCTIONS = ("request", "get", "options", "head", "post", "put", "patch", "delete")


def _thread_session() -> requests.Session:
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
    return cast(requests.Session, session)


def _pooled(name: str, original: Callable[..., requests.Response]) -> Callable[..., Any]:
    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> requests.Response:
        if not _pooled_http.get():
            return original(*args, **kwargs)
        session = _thread_session()
        try:
            return cast(requests.Response, getattr(session, name)(*args, **kwargs))
        finally:
            session.cookies.clear()

    return call


def _pool_http_connections() -> None:
    for name in _REQUESTS_FUNCTIONS:
        setattr(requests, name, _pooled(name, getattr(requests, name)))


_pool_http_connections()


async def send(
    url: str,
    *,
    title: str,
    body: str,
    # Not just an outer bound (ASYNC109): it also sets Apprise's own deadline and
    # socket timeouts, which a caller's asyncio.timeout() cannot reach.
    timeout: float = 30.0,
    metadata: Mapping[str, str] | None = None,
    body_format: Literal["text", "markdown"] = "text",
) -> SendResult:
    """Send one notification to `url`; never raises for a failed delivery."""
    try:
        loaded = _load(url, timeout)
    except Exception as exc:  # noqa: BLE001 -- instantiate() suppresses plugin errors, so
        # this is Apprise itself failing (a plugin module that will not import, ...):
        # nothing says the URL is wrong, so let a later attempt try again.
        error = f"apprise raised {type(exc).__name__} while loading the URL"
        return _failure(_fallback_mask(url), permanent=False, error=error)
    masked = loaded.masked
    if loaded.plugin is None or loaded.problem is not None:
        return _failure(masked, permanent=True, error=loaded.problem or "")

    plugin = _fresh_copy(loaded.plugin)
    _add_metadata(plugin, metadata)
    # A fresh Apprise per send, holding this send's own plugin.
    notifier = apprise.Apprise(asset=loaded.asset)
    notifier.add(plugin)
    _guard_apprise_logger()
    redaction = _Redaction(loaded.secrets)
    token = _redaction.set(redaction)
    tls_token = _tls_verify.set(bool(getattr(plugin, "verify_certificate", True)))
    http_token = _pooled_http.set(True)
    try:
        try:
            result = await asyncio.wait_for(
                notifier.async_notify(
                    body=body, title=title, body_format=body_format, timeout=timeout
                ),
                timeout=timeout + _OUTER_GRACE_SECONDS,
            )
        except TimeoutError:
            return _failure(masked, permanent=False, error=f"timed out after {timeout:g} s")
        except Exception as exc:  # noqa: BLE001 -- Apprise should not raise; if it does, retry
            return _failure(
                masked,
                permanent=False,
                error=f"apprise raised {type(exc).__name__}: {redaction.scrub(str(exc))}",
            )
        with result:
            return _classify(result, masked, redaction)
    finally:
        _pooled_http.reset(http_token)
        _tls_verify.reset(tls_token)
        _redaction.reset(token)
