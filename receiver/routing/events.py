"""The names rules may match on, from their single sources (warnings for anything else).

Event types: the webhook events we know (a floor: new ones appear unannounced) plus the
permission-callback events and the watchers' own events. Statuses: the derived channel
statuses of `receiver.status`, which is what `status: {from, to}` compares.
"""

from __future__ import annotations

from receiver.status import ChannelStatus
from receiver.vocabulary import KNOWN_EVENTS as WEBHOOK_EVENTS
from receiver.vocabulary import PERMISSION_EVENTS, WATCH_EVENTS

KNOWN_EVENTS: tuple[str, ...] = tuple(sorted(WEBHOOK_EVENTS | PERMISSION_EVENTS | WATCH_EVENTS))
KNOWN_STATUSES: tuple[str, ...] = tuple(status.value for status in ChannelStatus)
