"""What a number's card says beyond its status: the action needed, and the seed's columns.

Pure decisions over what is stored about a number (its channel facts, derived status,
health and its client's balance), shared by the dashboard's cards and the CSV export so both
say the same thing. The wording follows the 360dialog Partner Hub's card: the immediate
action required, and who must take it (the client: only the WABA owner may verify the
business or cancel; the partner: a support ticket, a refund).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from receiver.partner.facts import ChannelFacts
from receiver.status import ChannelStatus

Who = Literal["client", "partner"]

# Meta business verification (`fb_account_status`) and message-on-behalf
# (`on_behalf_of_business_info.status`) values that mean "done".
VERIFIED = frozenset({"verified", "approved"})
OBO_DONE = frozenset({"approved", "verified", "accepted"})
HEALTHY = frozenset({"available", "connected"})


@dataclass(frozen=True, slots=True)
class Action:
    text: str
    who: Who


def action_needed(
    status: str | None,
    facts: ChannelFacts,
    *,
    health: str | None = None,
    balance_low: bool = False,
) -> Action | None:
    """The most pressing thing someone must do for this number; None when nothing is needed.

    The status comes first (a banned number's balance does not matter), then what blocks
    going live (verification, message on behalf), then what hurts a live number (health,
    funds).
    """
    match status:
        case ChannelStatus.BANNED:
            return Action(
                "the WABA is banned: the client can appeal in Meta Business Manager", "client"
            )
        case ChannelStatus.RESTRICTED:
            return Action(
                "Meta restricted the account: the client should review the policy violation "
                "in Meta Business Manager and request a review",
                "client",
            )
        case ChannelStatus.PENDING_DELETION:
            return Action(
                "the number is being cancelled: refund any unused funds in the Partner Hub "
                "before it is deleted",
                "partner",
            )
        case ChannelStatus.DELETED:
            return Action(
                "no longer listed by the Partner API: check in the Partner Hub whether it was "
                "deleted on purpose",
                "partner",
            )
        case ChannelStatus.UNREGISTERED:
            return Action("number disconnected: open a support ticket with 360dialog", "partner")
        case ChannelStatus.ERROR:
            return Action(
                "360dialog reports an error (e.g. a rejected display name): open a support "
                "ticket or ask the client to request a new display name",
                "partner",
            )
        case ChannelStatus.UNKNOWN:
            return Action(
                "the Partner API reports a state we do not know: check the number in the "
                "Partner Hub",
                "partner",
            )
    if facts.fb_account_status is not None and facts.fb_account_status.lower() not in VERIFIED:
        return Action("client must complete Meta business verification", "client")
    if facts.obo_status is not None and facts.obo_status.lower() not in OBO_DONE:
        return Action(
            "client must accept the message-on-behalf request in Meta Business Manager", "client"
        )
    if status == ChannelStatus.DRAFT:
        return Action("client must finish the signup: the number is not registered yet", "client")
    if status == ChannelStatus.SANDBOX:
        return Action("client must finish the setup to take the number live", "client")
    if health is not None and health not in HEALTHY:
        if health == "key_invalid":
            return Action(
                "360dialog refused the number's API key: set a new one with "
                "`hub-receiver numbers set-key`",
                "partner",
            )
        return Action(f"number health is {health}: check the number in the Partner Hub", "partner")
    if balance_low:
        return Action("balance is low: the client must add funds", "client")
    return None


def number_registration(status: str | None, facts: ChannelFacts) -> str:
    """The seed's "Number registration" column: registered, not registered, or unknown."""
    if status in (ChannelStatus.LIVE, ChannelStatus.RESTRICTED, ChannelStatus.BANNED):
        return "registered"
    if status in (ChannelStatus.UNREGISTERED, ChannelStatus.DRAFT, ChannelStatus.SANDBOX):
        return "not registered"
    if status == ChannelStatus.DELETED:  # its last snapshot no longer says anything true
        return "unknown"
    # `status` (Classic Signup's field) is ignored for Embedded Signup channels (status.py).
    classic = facts.version_hint != "embedded"
    if classic and facts.status == "created":
        return "not registered"
    if (classic and facts.status == "ready") or facts.account_mode == "live":
        return "registered"
    return "unknown"
