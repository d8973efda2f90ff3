"""Shared fixtures: the reference data beside the checkout, and a throwaway workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data`: skipped with a reason on a user's clone, a failure under CI so CI never passes by skipping."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"reference data not found at {SHARED_DATA} (CI must have ../shared beside the checkout)")
        pytest.skip(f"reference data not found at {SHARED_DATA} (only present beside the project's own checkout)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch):
    """Tests never touch the network: the Hugging Face hub is forced offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
