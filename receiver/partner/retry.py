"""Retry a Partner API call on temporary failures, with full-jitter exponential backoff."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from receiver.partner.errors import PartnerAPIError

logger = logging.getLogger("receiver.partner")

_T = TypeVar("_T")


class RetryPolicy:
    """How often to retry (`max_retries` after the first attempt) and how long to wait."""

    __slots__ = ("_random", "backoff_base", "backoff_max", "max_retries")

    def __init__(
        self, *, max_retries: int = 3, backoff_base: float = 0.5, backoff_max: float = 10.0
    ) -> None:
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._random = random.Random()  # noqa: S311 - jitter, not security

    def delay(self, *, retries: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `retries + 1`; the server's Retry-After wins."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.backoff_max))
        ceiling = min(self.backoff_max, self.backoff_base * (2**retries))
        return self._random.uniform(0.0, ceiling)  # "full jitter"


async def with_retries(
    attempt: Callable[[int], Awaitable[_T]],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
    label: str,
) -> _T:
    """Await `attempt(n)` (n counts from 1) until it succeeds or fails for good.

    A `PartnerAPIError` of a retryable kind is retried up to `policy.max_retries` times;
    any other error, or the last one, is raised. `label` (method and path) names the call
    in the log.
    """
    retries = 0
    while True:
        try:
            return await attempt(retries + 1)
        except PartnerAPIError as error:
            if not error.retryable or retries >= policy.max_retries:
                raise
            delay = policy.delay(retries=retries, retry_after=error.retry_after)
            logger.warning(
                "partner api %s failed (%s) attempt=%d, retrying in %.2fs",
                label,
                error.kind,
                retries + 1,
                delay,
            )
        await sleep(delay)
        retries += 1
