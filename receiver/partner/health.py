"""A number's WhatsApp health, asked with the number's own key (`D360-API-KEY`).

Two endpoints, chosen by the channel's hosting platform:

    Cloud API     GET {D360_WABA_V2_BASE}/health_status   can_send_message AVAILABLE|LIMITED|BLOCKED
    On-Premise    GET {D360_WABA_BASE}/v1/health          gateway_status connected|connecting|...

Reading a body is pure (`classify_cloud`, `classify_on_premise`) and table-tested; a body of
a shape we do not know raises `UnknownShapeError`, which the watcher logs and never alerts on.
Every other failure leaves this module as a `HealthCheckError`; a 401/403 is not an error but
the reading `key_invalid`. Messages never carry the key (it only travels in a header).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import httpx

Platform = Literal["cloud_api", "on_premise"]
CLOUD_API: Platform = "cloud_api"
ON_PREMISE: Platform = "on_premise"


class Health(StrEnum):
    AVAILABLE = "available"  # Cloud API: can send messages
    LIMITED = "limited"
    BLOCKED = "blocked"
    CONNECTED = "connected"  # On-Premise gateway states
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"
    UNINITIALIZED = "uninitialized"
    UNREGISTERED = "unregistered"
    KEY_INVALID = "key_invalid"  # 360dialog refused the number's key (401)


HEALTHY: frozenset[str] = frozenset({Health.AVAILABLE, Health.CONNECTED})
# Seed: "If your phone number is disconnected | uninitialized or unregistered - create a
# ticket with our Support Team and we will assist you to get the number reconnected."
NEEDS_SUPPORT: frozenset[str] = frozenset(
    {Health.DISCONNECTED, Health.UNINITIALIZED, Health.UNREGISTERED, Health.BLOCKED}
)
# Order of concern, used to pick the state of a high-availability set of nodes.
_SEVERITY = {
    Health.CONNECTED: 0,
    Health.CONNECTING: 1,
    Health.UNINITIALIZED: 2,
    Health.DISCONNECTED: 3,
    Health.UNREGISTERED: 4,
}


class UnknownShapeError(ValueError):
    """A 2xx health body we cannot read; the message says what was missing."""


class HealthCheckError(Exception):
    """A health request failed (unreachable, 5xx, 429, unexpected status)."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.not_found = not_found  # 404: probably the other platform's endpoint


@dataclass(frozen=True, slots=True)
class Reading:
    health: str
    platform: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    additional_info: list[str] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)

    def detail(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "errors": self.errors,
            "additional_info": self.additional_info,
            "nodes": self.nodes,
        }


def platform_of(hosting_platform_type: str | None) -> Platform | None:
    """The endpoint family for a channel's hosting platform type (None: unknown)."""
    if not hosting_platform_type:
        return None
    word = "".join(ch for ch in hosting_platform_type.lower() if ch.isalnum())
    if "cloud" in word:
        return CLOUD_API
    if "prem" in word:
        return ON_PREMISE
    return None


def classify_cloud(body: object) -> Reading:
    """Read a `/health_status` body (Meta's shape, with or without the `health_status` wrapper)."""
    root = _mapping(body)
    inner = _mapping(root.get("health_status")) or root
    verdict = inner.get("can_send_message")
    if not isinstance(verdict, str) or verdict.lower() not in ("available", "limited", "blocked"):
        raise UnknownShapeError("no can_send_message of AVAILABLE, LIMITED or BLOCKED")
    errors: list[dict[str, Any]] = []
    info: list[str] = []
    for part in [inner, *(_mapping(e) for e in _list(inner.get("entities")))]:
        entity = part.get("entity_type")
        for raw in _list(part.get("errors")):
            error = _mapping(raw)
            if error:
                errors.append(
                    {
                        "entity": entity,
                        "code": error.get("error_code", error.get("code")),
                        "description": _text(
                            error.get("error_description") or error.get("message")
                        ),
                        "solution": _text(error.get("possible_solution")),
                    }
                )
        info.extend(str(item) for item in _list(part.get("additional_info")) if item)
    return Reading(health=verdict.lower(), platform=CLOUD_API, errors=errors, additional_info=info)


def classify_on_premise(body: object) -> Reading:
    """Read a `/v1/health` body: one `gateway_status`, or one per node (high availability)."""
    root = _mapping(body)
    health = _mapping(root.get("health"))
    errors = [
        {
            "code": error.get("code"),
            "description": _text(error.get("title") or error.get("message")),
            "solution": _text(error.get("details")),
        }
        for error in (_mapping(e) for e in _list(root.get("errors")))
        if error
    ]
    single = health.get("gateway_status")
    if isinstance(single, str):
        state = _gateway_state(single)
        return Reading(health=state, platform=ON_PREMISE, errors=errors)
    nodes: dict[str, str] = {}
    primary: str | None = None
    for name, raw in health.items():
        node = _mapping(raw)
        status = node.get("gateway_status")
        if isinstance(status, str):
            nodes[str(name)] = _gateway_state(status)
            if node.get("role") == "primary_master":
                primary = nodes[str(name)]
    if not nodes:
        raise UnknownShapeError("no health.gateway_status, nor a node with one")
    # The primary master holds the connection; without roles, the most worrying node speaks.
    state = primary or max(nodes.values(), key=lambda s: _SEVERITY[Health(s)])
    return Reading(health=state, platform=ON_PREMISE, errors=errors, nodes=nodes)


def describe(reading_detail: Mapping[str, Any]) -> str:
    """360dialog's error descriptions and possible solutions, one per line (for messages)."""
    lines: list[str] = []
    for raw in _list(reading_detail.get("errors")):
        error = _mapping(raw)
        text = " ".join(
            part
            for part in (
                f"[{error['code']}]" if error.get("code") is not None else "",
                _text(error.get("description")) or "",
                f"Possible solution: {error['solution']}" if error.get("solution") else "",
            )
            if part
        )
        if text:
            lines.append(text)
    lines.extend(str(item) for item in _list(reading_detail.get("additional_info")))
    nodes = _mapping(reading_detail.get("nodes"))
    if nodes:
        lines.append("nodes: " + ", ".join(f"{name} {state}" for name, state in nodes.items()))
    return "\n".join(lines)


class HealthClient:
    """Asks 360dialog about one number at a time; one pooled connection set per pass."""

    def __init__(
        self,
        *,
        waba_base: str,
        waba_v2_base: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._urls = {
            CLOUD_API: waba_v2_base.rstrip("/") + "/health_status",
            ON_PREMISE: waba_base.rstrip("/") + "/v1/health",
        }
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def check(self, *, api_key: str, platform: Platform) -> Reading:
        """One request; raises HealthCheckError, or UnknownShapeError for an unreadable 2xx body."""
        url = self._urls[platform]
        where = "Cloud API /health_status" if platform == CLOUD_API else "On-Premise /v1/health"
        try:
            response = await self._http.get(
                url, headers={"D360-API-KEY": api_key, "Accept": "application/json"}
            )
        except httpx.TimeoutException:
            raise HealthCheckError(f"{where}: no answer in time") from None
        except httpx.HTTPError as exc:
            raise HealthCheckError(f"{where}: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            return Reading(health=Health.KEY_INVALID, platform=platform)
        if response.status_code == 404:
            raise HealthCheckError(f"{where}: HTTP 404", not_found=True)
        if not response.is_success:
            raise HealthCheckError(f"{where}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise UnknownShapeError(f"{where}: not JSON") from None
        try:
            return classify_cloud(body) if platform == CLOUD_API else classify_on_premise(body)
        except UnknownShapeError as exc:
            raise UnknownShapeError(f"{where}: {exc}") from None

    async def aclose(self) -> None:
        await self._http.aclose()


def _gateway_state(value: str) -> str:
    word = value.strip().lower()
    if word not in _SEVERITY:
        raise UnknownShapeError(f"gateway_status {value[:40]!r} is not one we know")
    return word


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return str(value).strip() or None if value is not None else None
