"""Where the project and the shared real data are, and a runnable copy of the project.

Shared by the tests and the benchmarks (``sys.path`` gets ``tests/``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATASETS = Path(
    os.environ.get("CNN_FB_SHARED_DATASETS", PROJECT_ROOT.parent / "shared" / "datasets")
)


def make_project_copy(destination: Path) -> Path:
    """A runnable copy of the project (config, metadata, empty data folders) in `destination`.

    The package itself is imported from the editable install; the converted weights cache
    (data/06_models) is shared with the real project so that the copy needs no set-up.
    """
    destination.mkdir(parents=True, exist_ok=True)
    for item in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / item, destination / item)
    # conf/local is personal (git ignores it): the copy runs the project's own configuration.
    shutil.copytree(
        PROJECT_ROOT / "conf",
        destination / "conf",
        dirs_exist_ok=True,
        ignore=lambda folder, names: names if Path(folder) == PROJECT_ROOT / "conf/local" else [],
    )
    (destination / "src").mkdir(exist_ok=True)
    for layer in (PROJECT_ROOT / "data").iterdir():
        if layer.is_dir() and layer.name != "06_models":
            (destination / "data" / layer.name).mkdir(parents=True, exist_ok=True)
    (destination / "data" / "06_models").symlink_to(PROJECT_ROOT / "data" / "06_models")
    return destination


def project_config(project: Path, env: str | None = None, runtime_params: dict | None = None):
    """The configuration loader of `kedro run --env <env> --params <runtime_params>` in `project`,
    as settings.py configures it, but without the personal conf/local layer."""
    from cnn_feature_behavior.config_loader import StudyConfigLoader
    from cnn_feature_behavior.settings import CONFIG_LOADER_ARGS

    return StudyConfigLoader(
        str(project / "conf"),
        **CONFIG_LOADER_ARGS,
        env=env,
        runtime_params=runtime_params or {},
        local_env=None,
    )


def kedro_run(project: Path, *arguments: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """`kedro run <arguments>` in `project` as a user types it (telemetry off), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", *arguments],
        cwd=project,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
