"""Pure decisions about a channel's status: facts -> status, and whether something changed.

The status set is deliberately small; every value answers "what should ops know":

    status            meaning                                  set by (rule number below)
    ----------------  ---------------------------------------  --------------------------------
    draft             sign-up started, no app, not submitted   2 draft; 5 live w/o app_id;
                                                               6 sandbox w/o app_id; 8
    pending_review    submitted, waiting on Meta / 360dialog   2 pending; 4 created, unverified,
                                                               verified, new_name_requested; 7
    sandbox           a sandbox (test) number, not live        2 sandbox; 6 sandbox with app_id
    live              live and ready to use                    2 live, done; 4 ready; 5
    restricted        live but limited by Meta                 1 account_violation,
                                                               account_restriction
    banned            the WABA is banned                       1 account_banned
    pending_deletion  cancelled or removed, deleted later      1 bsp_removed; 2; 3 terminated_at
    unregistered      the number is not registered             2 unregistered
    error             360dialog reports an error               4 error, certificate_declined
    unknown           a hub_status value we do not know        2 anything else

Which signup a channel used decides whether its `status` field means anything (seed, "How to
understand the status of a channel"): Embedded Signup (version 2) channels are read from
`account_mode` and their `status` is ignored, even a Classic value such as `created` or
`ready`; the Classic (version 1, deprecated) `status` table applies only to Classic channels.
A channel is Embedded Signup when a version marker says 2, or, without a marker, when it
carries `account_mode`; it is Classic when a marker says 1, when `hub_status` is done/pending,
or when it has no `account_mode` (`ChannelFacts.version_hint`). Classic Signup is deprecated,
so an object that carries `account_mode` is never read the Classic way without a marker.

Precedence (first rule that applies wins):

1. WABA restriction (`waba_account.status`): account_banned -> banned; account_violation,
   account_restriction -> restricted; bsp_removed -> pending_deletion (360dialog was removed as
   the WABA's provider, so the number is on its way out). These win over everything because a
   number the Hub still calls "live" but Meta has restricted is exactly what ops must hear.
2. `hub_status`, the Hub's own summary: live, sandbox, pending_deletion, draft, unregistered
   map to themselves; Classic `done` -> live, `pending` -> pending_review; any other value ->
   unknown (never guessed).
3. `terminated_at` set -> pending_deletion.
4. Classic Signup channels only, `status`: created, unverified, verified, new_name_requested
   -> pending_review; certificate_declined, error -> error; ready -> live.
5. `account_mode == "live"` -> live, unless the object explicitly reports an empty `app_id`
   (e.g. `integration.app_id: null`): then the seed's "no app_id and no terminated_at = draft"
   also applies and draft wins, because a channel_created webhook carries account_mode "live"
   before the number is usable.
6. `account_mode == "sandbox"`: with an `app_id` -> sandbox (the Hub's own name for such a
   number, as `hub_status` "sandbox"; it is set up but not live); without one -> draft (the
   seed's "no app_id and no terminated_at = draft": sign-up is not finished).
7. `app_id` set: the seed says only "not terminated"; nothing above said live, so the channel
   is past draft but not live -> pending_review.
8. Neither app_id nor terminated_at -> draft.

An Embedded Signup channel whose `status` holds a Classic value says so in its "why"
("status 'ready' is ignored (Embedded Signup)"), so nobody wonders why `ready` is not live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from receiver.partner.facts import ChannelFacts


class ChannelStatus(StrEnum):
    DRAFT = "draft"
    PENDING_REVIEW = "pending_review"
    SANDBOX = "sandbox"
    LIVE = "live"
    RESTRICTED = "restricted"
    BANNED = "banned"
    PENDING_DELETION = "pending_deletion"
    UNREGISTERED = "unregistered"
    ERROR = "error"
    UNKNOWN = "unknown"
    DELETED = "deleted"  # no longer listed by the Partner API (found by reconciliation)


@dataclass(frozen=True, slots=True)
class DerivedStatus:
    status: str
    why: str


_WABA_STATES: dict[str, tuple[ChannelStatus, str]] = {
    "account_banned": (ChannelStatus.BANNED, "the WABA is banned"),
    "account_violation": (ChannelStatus.RESTRICTED, "Meta reported a policy violation"),
    "account_restriction": (ChannelStatus.RESTRICTED, "Meta restricted the account"),
    "bsp_removed": (ChannelStatus.PENDING_DELETION, "360dialog was removed as the WABA's BSP"),
}

_HUB_STATUSES: dict[str, ChannelStatus] = {
    "live": ChannelStatus.LIVE,
    "sandbox": ChannelStatus.SANDBOX,
    "pending_deletion": ChannelStatus.PENDING_DELETION,
    "draft": ChannelStatus.DRAFT,
    "unregistered": ChannelStatus.UNREGISTERED,
    "done": ChannelStatus.LIVE,  # Classic Signup only
    "pending": ChannelStatus.PENDING_REVIEW,  # Classic Signup only
}

_V1_STATUSES: dict[str, tuple[ChannelStatus, str]] = {
    "created": (ChannelStatus.PENDING_REVIEW, "the number is not registered yet"),
    "unverified": (ChannelStatus.PENDING_REVIEW, "the Commerce Policy review has not approved it"),
    "verified": (ChannelStatus.PENDING_REVIEW, "the Commerce Policy review approved it"),
    "new_name_requested": (ChannelStatus.PENDING_REVIEW, "a display name change awaits approval"),
    "certificate_declined": (ChannelStatus.ERROR, "the display name was rejected"),
    "ready": (ChannelStatus.LIVE, "the number is registered"),
    "error": (ChannelStatus.ERROR, "360dialog reports an error"),
}


def derive_status(facts: ChannelFacts) -> DerivedStatus:
    """Decide a channel's status from its facts, with a one-sentence reason."""
    if not facts.listed:
        return _derived(ChannelStatus.DELETED, "no longer listed by the Partner API")
    if facts.waba_status in _WABA_STATES:
        status, meaning = _WABA_STATES[facts.waba_status]
        return _derived(status, f"waba_account.status is {facts.waba_status!r}: {meaning}")

    if facts.hub_status is not None:
        mapped = _HUB_STATUSES.get(facts.hub_status)
        if mapped is None:
            return _derived(
                ChannelStatus.UNKNOWN, f"hub_status is {facts.hub_status!r}, a value we do not know"
            )
        return _derived(mapped, f"hub_status is {facts.hub_status!r}")

    if facts.terminated_at is not None:
        return _derived(
            ChannelStatus.PENDING_DELETION,
            f"terminated_at is set ({facts.terminated_at.isoformat()})",
        )

    classic = _is_classic(facts)
    if classic and facts.status in _V1_STATUSES:
        status, meaning = _V1_STATUSES[facts.status]
        return _derived(status, f"status is {facts.status!r} (Classic Signup): {meaning}")
    ignored = _ignored_status(facts, classic=classic)

    if facts.account_mode == "live":
        if facts.app_id_reported and facts.app_id is None:
            return _derived(
                ChannelStatus.DRAFT,
                "account_mode is 'live' but app_id is empty and terminated_at is unset" + ignored,
            )
        return _derived(ChannelStatus.LIVE, "account_mode is 'live'" + ignored)

    if facts.account_mode == "sandbox":
        if facts.app_id is not None:
            return _derived(
                ChannelStatus.SANDBOX,
                f"account_mode is 'sandbox' and app_id is {facts.app_id!r}: set up, not live"
                + ignored,
            )
        return _derived(
            ChannelStatus.DRAFT,
            "account_mode is 'sandbox' and neither app_id nor terminated_at is set" + ignored,
        )

    if facts.app_id is not None:
        return _derived(
            ChannelStatus.PENDING_REVIEW,
            f"app_id is {facts.app_id!r} (not terminated) but nothing says the channel is live"
            + ignored,
        )

    return _derived(ChannelStatus.DRAFT, "neither app_id nor terminated_at is set" + ignored)


def _is_classic(facts: ChannelFacts) -> bool:
    # version_hint is set by channel_facts(); facts built by hand may carry only account_mode.
    if facts.version_hint is not None:
        return facts.version_hint == "classic"
    return facts.account_mode is None


def _ignored_status(facts: ChannelFacts, *, classic: bool) -> str:
    if classic or facts.status not in _V1_STATUSES:
        return ""
    return f"; status {facts.status!r} is ignored (Embedded Signup)"


def is_newer(*, current: datetime | None, candidate: datetime | None) -> bool:
    """Whether a snapshot stamped `candidate` may overwrite one stamped `current`.

    Older never overwrites newer; an equal stamp may (same moment, maybe more fields). No
    current stamp: anything may overwrite. A candidate without a stamp cannot prove it is
    newer, so it never overwrites a stamped current (refetch from the API instead). Naive
    datetimes are taken as UTC.
    """
    if current is None:
        return True
    if candidate is None:
        return False
    return _aware(candidate) >= _aware(current)


def status_changed(previous: str | None, new: DerivedStatus) -> bool:
    """Whether `new` differs from the stored status (a first status counts as a change)."""
    return previous != new.status


def _derived(status: ChannelStatus, why: str) -> DerivedStatus:
    return DerivedStatus(status=status.value, why=why)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
