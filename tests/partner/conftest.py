from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import pytest

from receiver.dev.fake_hub import FakeHubState, create_fake_hub_app
from receiver.dev.sample_data import default_state
from receiver.http.loopback import serve_app
from receiver.partner.client import PartnerClient

from .support import API_KEY, PARTNER_ID, PASSWORD, TOKEN_TTL, USERNAME, ManualClock


class MakeClient(Protocol):
    def __call__(self, **overrides: Any) -> PartnerClient: ...


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def hub_state(clock: ManualClock) -> FakeHubState:
    state = default_state(PARTNER_ID)
    state.clock = clock
    return state


@pytest.fixture
async def hub_url(hub_state: FakeHubState) -> AsyncIterator[str]:
    app = create_fake_hub_app(
        hub_state, api_key=API_KEY, username=USERNAME, password=PASSWORD, token_ttl=TOKEN_TTL
    )
    async with serve_app(app) as url:
        yield url


@pytest.fixture
async def make_client(hub_url: str, clock: ManualClock) -> AsyncIterator[MakeClient]:
    """Return create(**overrides) -> PartnerClient on the fake hub (API key auth by default)."""
    created: list[PartnerClient] = []

    def create(**overrides: Any) -> PartnerClient:
        options: dict[str, Any] = {
            "base_url": hub_url,
            "partner_id": PARTNER_ID,
            "api_key": API_KEY,
            "timeout": 2.0,
            "max_retries": 2,
            "backoff_base": 0.001,
            "backoff_max": 0.01,
            "clock": clock,
        }
        options.update(overrides)
        client = PartnerClient(**options)
        created.append(client)
        return client

    yield create
    for client in created:
        await client.aclose()


@pytest.fixture
def token_client(make_client: MakeClient) -> Callable[..., PartnerClient]:
    """Return create(**overrides) -> PartnerClient using username/password auth."""

    def create(**overrides: Any) -> PartnerClient:
        return make_client(api_key=None, username=USERNAME, password=PASSWORD, **overrides)

    return create
