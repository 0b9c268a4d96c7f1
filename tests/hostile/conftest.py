"""Fixtures of the hostile-input tests (the fakes, `hub`, `sink` and `mailbox`, are shared)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.support import LogCapture


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every log record of the test (root logger at DEBUG), from any thread."""
    with LogCapture.installed() as capture:
        yield capture
