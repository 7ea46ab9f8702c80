"""Fixtures shared by the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(
    os.environ.get("CNN_FB_SHARED_DATASETS", PROJECT_ROOT.parent / "shared" / "datasets")
)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The small real datasets beside the project; tests using them skip where absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real mini datasets not found at {SHARED_DATASETS} (../shared is absent)")
    return SHARED_DATASETS
