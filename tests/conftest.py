"""Fixtures shared by the test suite."""

from __future__ import annotations

import os
import shutil
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


def make_project_copy(destination: Path) -> Path:
    """A runnable copy of the project (config, metadata, empty data folders) in `destination`.

    The package itself is imported from the editable install; the converted weights cache
    (data/06_models) is shared with the real project so that the copy needs no set-up.
    """
    destination.mkdir(parents=True, exist_ok=True)
    for item in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / item, destination / item)
    shutil.copytree(PROJECT_ROOT / "conf", destination / "conf", dirs_exist_ok=True)
    (destination / "src").mkdir(exist_ok=True)
    for layer in (PROJECT_ROOT / "data").iterdir():
        if layer.is_dir() and layer.name != "06_models":
            (destination / "data" / layer.name).mkdir(parents=True, exist_ok=True)
    (destination / "data" / "06_models").symlink_to(PROJECT_ROOT / "data" / "06_models")
    return destination


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """A temporary, runnable copy of the project: runs there never touch the real data/."""
    return make_project_copy(tmp_path / "project")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Fail any test that tries to open a connection off this machine."""
    import socket

    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("localhost", "::1")
            and not host.startswith("127.")
        ):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
