"""Helpers of the watcher tests: Services on a database, without a web app."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from receiver.metrics import Metrics
from receiver.services import Services, base_services
from receiver.settings import Settings


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Services (own engine) on `settings.database_url`, disposed afterwards."""
    services = base_services(settings, metrics=Metrics())
    try:
        yield services
    finally:
        if services.partner is not None:
            await services.partner.aclose()
        await services.engine.dispose()


def gaps(times: list[float]) -> list[float]:
    """The distances between successive times, in order."""
    ordered = sorted(times)
    return [later - earlier for earlier, later in itertools.pairwise(ordered)]


def assert_spaced(times: list[float], interval: float) -> None:
    """At most k + 1 of `times` in any window of k intervals: t_j - t_i >= (j - i - 1) * interval.

    Slots are exactly `interval` apart, but a request goes out once its reservation has
    committed, so under load one may trail its slot (never by a whole slot) and come close
    to the next. Without a shared limit, two processes each keeping `interval` send twice
    as fast, and the pair ten requests apart comes in at half the required distance.
    """
    ordered = sorted(times)
    for i, earlier in enumerate(ordered):
        for j in range(i + 2, len(ordered)):
            required = (j - i - 1) * interval
            assert ordered[j] - earlier >= required, (
                f"requests {i} and {j} came {ordered[j] - earlier:.3f}s apart, "
                f"fewer than {required:.3f}s: {ordered}"
            )
