"""Fixtures of the hostile-input tests: the pipeline suite's fake Partner API, sink and mailbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.support import LogCapture
from tests.pipeline.conftest import hub, mailbox, sink

__all__ = ["hub", "logs", "mailbox", "sink"]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every log record of the test (root logger at DEBUG), from any thread."""
    with LogCapture.installed() as capture:
        yield capture
