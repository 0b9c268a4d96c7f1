"""What rules are matched against: one event with its enriched channel and client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RoutingSubject:
    """One event, as routing sees it.

    `event` holds the parsed event fields flat (`type`, `id`, `phone_number`, `client_id`,
    `channel_id`, `violation_type`, ...) plus `data` (the raw `data` object) so rules can
    reach anything with `event.data...`. `channel`/`client` are the enriched snapshots
    (Partner API shapes), None when unknown. `status_change` is (from, to) of the derived
    channel status when this event changed it; from is None for a first observation.
    """

    event_type: str
    event: Mapping[str, object]
    channel: Mapping[str, object] | None
    client: Mapping[str, object] | None
    status_change: tuple[str | None, str] | None
    now: datetime
