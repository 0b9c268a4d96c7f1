"""The sample payloads, kept once.

The partner webhooks live in receiver/dev/samples (shipped: `send-test` posts them); the test-
only documents (a Partner API answer, a permission callback) in tests/fixtures. All are copies
of ../shared/samples, which the package cannot reach once installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHIPPED_SAMPLES = REPO / "receiver" / "dev" / "samples"
TEST_FIXTURES = REPO / "tests" / "fixtures"


def sample_path(name: str) -> Path:
    """Where the sample `name` (e.g. `partner_webhook.channel_live.json`) is kept."""
    for folder in (SHIPPED_SAMPLES, TEST_FIXTURES):
        path = folder / name
        if path.exists():
            return path
    raise FileNotFoundError(f"no sample {name} in {SHIPPED_SAMPLES} or {TEST_FIXTURES}")


def sample(name: str) -> bytes:
    """The sample's bytes, exactly as they would arrive."""
    return sample_path(name).read_bytes()


def sample_json(name: str) -> Any:
    """The sample parsed."""
    return json.loads(sample_path(name).read_text(encoding="utf-8"))
