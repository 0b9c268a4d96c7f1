"""Client balance: poll 360dialog's balance endpoint and turn crossings into events.

360dialog allows **1 request per 10 s** on `GET /partners/{pid}/clients/{cid}/info/balance`,
for the partner as a whole, so every request waits for one `SharedLimiter` slot named
`balance` in the database: web processes, workers and a CLI run together stay inside it.
Clients are polled least recently requested first; `BALANCE_INTERVAL` is the aim for one
round and, with more than `BALANCE_INTERVAL / 10 s` clients, a round simply takes longer
(each pass is a `balance_rounds` row; /metrics shows the last one's duration).

Which clients: the balance is only meaningful for clients who pay 360dialog directly; for
the others it "will stay at the value 0 and can be ignored" (the seed). Neither the client
nor the channel object says how a client pays, so with `BALANCE_CLIENTS=auto` a client
counts as direct-payment once its balance has ever been non-zero; the others are still
asked, but once a day instead of every round. `all` treats every client as direct-payment,
`ID,ID` polls exactly those clients.

A crossing below a threshold records one `balance_low` event, back to it or above one
`balance_recovered`; polls in between record nothing. The thresholds are `BALANCE_LOW` and
every upper bound the loaded rules put on `event.balance` for `balance_low`
(`receiver.routing.thresholds`): each (client, threshold) crosses on its own, and the event
says which (`threshold`, `threshold_op`, `default_threshold`). Whether a client was below a
threshold is read from its previous reading, so a threshold a new rule adds is told at the
next crossing, not at once. The dedup key counts the client's crossing polls and names the
threshold, so a second process or a crash between storing the event and the state never
records it twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from receiver.db.store import balance as store
from receiver.partner.client import PartnerAPIError
from receiver.routing.errors import RulesError
from receiver.routing.rules_state import load
from receiver.routing.ruleset import RuleSet
from receiver.routing.thresholds import Threshold, rule_thresholds
from receiver.services import Services
from receiver.settings import Settings
from receiver.watch.events import WatchEvent, record_watch_events
from receiver.watch.limiter import SharedLimiter

log = logging.getLogger("receiver.watch.balance")

SOURCE = "balance"
LIMIT_NAME = "balance"
LIMIT_INTERVAL = 10.0  # seconds: the seed's "Rate limit is 1 request per 10s"
# Slots are this much further apart: 360dialog counts arrivals, we can only time departures,
# and a request may trail its slot (connection set-up, network jitter).
LIMIT_MARGIN = 0.5
ZERO_BALANCE_PERIOD = 86400.0  # a client whose balance has only ever been 0: once a day

Crossing = Literal["balance_low", "balance_recovered"]


class UnreadableBalanceError(ValueError):
    """The balance endpoint answered something we cannot read as a balance."""


@dataclass(frozen=True, slots=True)
class Reading:
    balance: Decimal
    currency: str | None
    total_price: Decimal | None


@dataclass(frozen=True, slots=True)
class Scope:
    """Which clients are polled and treated as direct-payment (`BALANCE_CLIENTS`)."""

    mode: Literal["auto", "all", "ids"]
    ids: tuple[str, ...] = ()


# -- pure decisions ----------------------------------------------------------------------


def decimal_of(value: object) -> Decimal | None:
    """A finite number from a JSON number or numeric text; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _month_usage(usage: object, *, year: int, month: int) -> Mapping[str, Any] | None:
    if isinstance(usage, Mapping):
        return usage
    if isinstance(usage, list):
        months = [u for u in usage if isinstance(u, Mapping)]
        for item in months:
            if decimal_of(item.get("year")) == year and decimal_of(item.get("month")) == month:
                return item
        return months[-1] if months else None
    return None


def parse_balance(body: object, *, year: int, month: int) -> Reading:
    """Read balance, currency and this month's usage total_price; raise UnreadableBalanceError.

    Tolerant of shape: the fields may sit at the top or under `data`, `usage` may be one
    object or a list of months (`from_month`/`from_year`). A balance that is not a number
    is an error, never a zero: a wrong zero would tell the team a client ran out.
    """
    if (
        isinstance(body, Mapping)
        and isinstance(body.get("data"), Mapping)
        and ("balance" not in body)
    ):
        body = body["data"]
    if not isinstance(body, Mapping):
        raise UnreadableBalanceError(f"expected a JSON object, got {type(body).__name__}")
    if "balance" not in body:
        raise UnreadableBalanceError("no `balance` field in the answer")
    balance = decimal_of(body["balance"])
    if balance is None:
        shown = repr(body["balance"])
        raise UnreadableBalanceError(f"`balance` is not a number: {shown[:60]}")
    usage = _month_usage(body.get("usage"), year=year, month=month)
    total_price = decimal_of(usage.get("total_price")) if usage is not None else None
    currency = body.get("currency")
    if not isinstance(currency, str) and usage is not None:
        currency = usage.get("currency")
    return Reading(
        balance=balance,
        currency=currency.strip()[:16] or None if isinstance(currency, str) else None,
        total_price=total_price,
    )


def parse_scope(text: str) -> Scope:
    """`auto`, `all`, or comma-separated client ids (settings validated the spelling)."""
    word = text.strip().lower()
    if word in {"auto", ""}:
        return Scope("auto")
    if word == "all":
        return Scope("all")
    return Scope("ids", tuple(part.strip() for part in text.split(",") if part.strip()))


def direct_payment(scope: Scope, *, nonzero_seen: bool, balance: Decimal | None = None) -> bool:
    """Whether a client's balance means something (so a low one is worth telling)."""
    if scope.mode != "auto":
        return True
    return nonzero_seen or (balance is not None and balance != 0)


def crossing(
    *, was_low: bool, balance: Decimal, threshold: Decimal, watched: bool
) -> tuple[bool, Crossing | None]:
    """Return (low now, the crossing to record or None). Below the threshold is low."""
    if not watched:
        return was_low, None
    low = balance < threshold
    if low == was_low:
        return was_low, None
    return low, "balance_low" if low else "balance_recovered"


def crossings_of(
    thresholds: Iterable[Threshold],
    *,
    previous: Decimal | None,
    balance: Decimal,
    was_watched: bool,
    watched: bool,
) -> list[tuple[Threshold, Crossing]]:
    """Each threshold the balance crossed since the previous reading, lowest first.

    An unwatched client (balance only ever 0) is below nothing: it crosses nothing while
    unwatched and, once watched, crosses every threshold its balance is below.
    """
    if not watched:
        return []
    found: list[tuple[Threshold, Crossing]] = []
    for threshold in sorted(set(thresholds)):
        was_low = was_watched and previous is not None and threshold.below(previous)
        low = threshold.below(balance)
        if low != was_low:
            found.append((threshold, "balance_low" if low else "balance_recovered"))
    return found


def thresholds_of(settings: Settings, rules: RuleSet | None) -> frozenset[Threshold]:
    """`BALANCE_LOW` and the rules' own thresholds."""
    default = Threshold(settings.balance_low)
    return frozenset({default, *(rule_thresholds(rules) if rules is not None else ())})


def poll_period(scope: Scope, *, interval: float, nonzero_seen: bool) -> float:
    """Seconds between polls of one client."""
    if direct_payment(scope, nonzero_seen=nonzero_seen):
        return interval
    return max(interval, ZERO_BALANCE_PERIOD)


def request_cutoff(scope: Scope, *, now: datetime, interval: float, nonzero_seen: bool) -> datetime:
    """A client requested after this is not due. Half a period: a pass that starts
    a little early (the scheduler's lease) still finds last round's clients due."""
    period = poll_period(scope, interval=interval, nonzero_seen=nonzero_seen)
    return now - timedelta(seconds=period / 2)


def dedup_key(
    client_id: str, *, crossings: int, kind: Crossing, threshold: Threshold | None = None
) -> str:
    """The same crossing always gets the same key: the client, its crossing number and,
    for a threshold other than `BALANCE_LOW`, the threshold (`lt50`)."""
    key = f"{client_id}:{crossings}:{kind}"
    return key if threshold is None else f"{key}:{threshold.text()}"


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


# -- one pass ------------------------------------------------------------------------------


@dataclass
class PassResult:
    clients: int = 0  # asked
    read: int = 0  # answers read
    errors: int = 0
    events: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.read} of {self.clients} balances read, {self.errors} errors, "
            f"{self.events} events, {self.seconds:.0f}s"
        )


@dataclass(frozen=True, slots=True)
class Progress:
    index: int  # 1-based
    total: int
    client_id: str
    outcome: str  # read | error | skipped
    detail: str


ProgressHook = Callable[[Progress], None]


def balance_limiter(
    services: Services, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> SharedLimiter:
    """The one balance limit, shared through the database by every process."""
    return SharedLimiter(
        services.rate_slots(),
        name=LIMIT_NAME,
        interval=LIMIT_INTERVAL + LIMIT_MARGIN,
        clock=services.clock,
        sleep=sleep,
    )


async def balance_pass(
    services: Services,
    *,
    force: bool = False,
    progress: ProgressHook | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> PassResult:
    """Poll every due client once (`force`: every client in scope), honouring the limit."""
    partner = services.partner
    if partner is None:
        raise RuntimeError("the Partner API is not configured (D360_PARTNER_ID, D360_API_KEY)")
    settings = services.settings
    scope = parse_scope(settings.balance_clients)
    interval = settings.balance_interval or 3600.0
    started = services.clock()
    async with services.sessions() as session:
        found = await store.candidates(session, ids=scope.ids if scope.mode == "ids" else None)
    cutoffs = {
        c.client_id: None
        if force
        else request_cutoff(scope, now=started, interval=interval, nonzero_seen=c.nonzero_seen)
        for c in found
    }
    due = [
        c
        for c in found
        if (cut := cutoffs[c.client_id]) is None or c.requested_at is None or c.requested_at <= cut
    ]
    result = PassResult(clients=len(due))
    thresholds = thresholds_of(settings, _loaded_rules(services, now=started))
    async with services.sessions() as session, session.begin():
        round_id = await store.start_round(session, now=started)
    limiter = balance_limiter(services, sleep=sleep)
    for index, candidate in enumerate(due, start=1):
        outcome, detail = await _poll(
            services,
            limiter,
            candidate.client_id,
            scope,
            cutoffs[candidate.client_id],
            result,
            thresholds,
        )
        if progress is not None:
            progress(Progress(index, len(due), candidate.client_id, outcome, detail))
    finished = services.clock()
    result.seconds = (finished - started).total_seconds()
    async with services.sessions() as session, session.begin():
        await store.finish_round(
            session, round_id=round_id, now=finished, clients=result.read, errors=result.errors
        )
    return result


async def _poll(  # noqa: PLR0917 - private, called once
    services: Services,
    limiter: SharedLimiter,
    client_id: str,
    scope: Scope,
    cutoff: datetime | None,
    result: PassResult,
    thresholds: frozenset[Threshold],
) -> tuple[str, str]:
    assert services.partner is not None
    settings = services.settings
    now = services.clock()
    async with services.sessions() as session, session.begin():
        state = await store.claim(session, client_id=client_id, now=now, cutoff=cutoff)
    if state is None:
        return "skipped", "another process asked for it just now"
    try:
        body = await services.partner.get_balance(
            client_id, gate=limiter, from_month=now.month, from_year=now.year
        )
        reading = parse_balance(body, year=now.year, month=now.month)
    except (PartnerAPIError, UnreadableBalanceError) as exc:
        result.errors += 1
        log.warning(
            "balance of client %s not read (%s); asking again next round",
            client_id,
            exc,
            extra={"watcher": SOURCE, "client_id": client_id},
        )
        async with services.sessions() as session, session.begin():
            await store.save_error(session, client_id=client_id, error=str(exc))
        return "error", str(exc)
    result.read += 1
    nonzero_seen = state.nonzero_seen or reading.balance != 0
    watched = direct_payment(scope, nonzero_seen=nonzero_seen)
    default = Threshold(settings.balance_low)
    found = crossings_of(
        thresholds,
        previous=decimal_of(state.balance),
        balance=reading.balance,
        was_watched=direct_payment(scope, nonzero_seen=state.nonzero_seen),
        watched=watched,
    )
    low = watched and default.below(reading.balance)
    crossings = state.crossings + (1 if found else 0)
    if found:
        events = [
            _event(
                client_id,
                kind,
                reading,
                dedup_key(
                    client_id,
                    crossings=crossings,
                    kind=kind,
                    threshold=None if threshold == default else threshold,
                ),
                threshold=threshold,
                default=threshold == default,
                previous=state.balance,
            )
            for threshold, kind in found
        ]
        result.events += len(await record_watch_events(services, events))
    kind = ", ".join(f"{k} ({t.op} {format(t.bound, 'f')})" for t, k in found) or None
    balance, total = _text(reading.balance), _text(reading.total_price)
    assert balance is not None
    changed = (balance, reading.currency, total) != (
        state.balance,
        state.currency,
        state.total_price,
    )
    async with services.sessions() as session, session.begin():
        await store.save_reading(
            session,
            client_id=client_id,
            now=services.clock(),
            balance=balance,
            currency=reading.currency,
            total_price=total,
            nonzero_seen=nonzero_seen,
            low=low,
            expected_crossings=state.crossings,
            crossings=crossings,
            changed=changed,
        )
    shown = f"{balance} {reading.currency or ''}".strip()
    usage = f", usage this month {total}" if total is not None else ""
    note = "" if watched else " (balance 0: not direct payment, not watched)"
    return "read", f"{shown}{usage}{note}" + (f" -> {kind}" if kind else "")


def _event(
    client_id: str,
    kind: Crossing,
    reading: Reading,
    key: str,
    *,
    threshold: Threshold,
    default: bool,
    previous: str | None,
) -> WatchEvent:
    fields = {
        "balance": reading.balance,
        "currency": reading.currency,
        "total_price": reading.total_price,
        # Whole thresholds as integers, so `where: {event.threshold: 50}` (text) matches.
        "threshold": int(threshold.bound)
        if threshold.bound == threshold.bound.to_integral_value()
        else threshold.bound,
        "threshold_op": threshold.op,
        "default_threshold": default,
        "previous_balance": decimal_of(previous),
    }
    return WatchEvent(
        event_type=kind,
        source=SOURCE,
        dedup_key=key,
        data={
            "client_id": client_id,
            "balance": _text(reading.balance),
            "currency": reading.currency,
            "usage": {"total_price": _text(reading.total_price)},
        },
        client_id=client_id,
        fields=fields,
    )


def _loaded_rules(services: Services, *, now: datetime) -> RuleSet | None:
    """The rules this process routes with; a CLI run loads them (None when they do not load:
    `BALANCE_LOW` alone is still watched, and start-up or `rules check` names the problem)."""
    if services.rules_holder is not None:
        return services.rules_holder.current
    try:
        return load(services.settings, now=now).rules
    except RulesError as exc:
        log.warning("routing rules not loaded (%s); watching BALANCE_LOW only", exc)
        return None


class BalanceWatcher:
    """The scheduler's handle: one pass per `BALANCE_INTERVAL` (off without the Partner API)."""

    name = "balance"

    def interval(self, settings: Settings) -> float | None:
        if not settings.partner_api_configured:
            return None
        return settings.balance_interval

    async def run_once(self, services: Services) -> object:
        if services.partner is None:
            return "skipped: the Partner API is not configured"
        return await balance_pass(services)
