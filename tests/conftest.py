"""Fixtures shared by the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders.project import PROJECT_ROOT, SHARED_DATASETS, make_project_copy


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The small real datasets beside the project; tests using them skip where absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real mini datasets not found at {SHARED_DATASETS} (../shared is absent)")
    return SHARED_DATASETS


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
