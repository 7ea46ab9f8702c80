"""The set-up commands: `make setup` makes and uses the project's own virtual environment (.venv),
and says what to install where it cannot. The real install is checked by CI (`.ci/run`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(project_root: Path, *arguments: str, env: dict | None = None):
    """`make <arguments>` in the project. A test that runs (not `-n`) a target that installs names
    PYTHON inside its temporary VENV too, so that no Makefile ever installs into this Python."""
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(project_root), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_supported_pythons_are_pyprojects(project_root):
    makefile = (project_root / "Makefile").read_text()
    low = re.search(r"^MIN_PYTHON := (3\.\d+)$", makefile, re.M)[1]
    high = re.search(r"^MAX_PYTHON := (3\.\d+)$", makefile, re.M)[1]
    with open(project_root / "pyproject.toml", "rb") as file:
        requires = tomllib.load(file)["project"]["requires-python"]
    major, minor = high.split(".")
    assert requires == f">={low},<{major}.{int(minor) + 1}"
    readme = (project_root / "README.md").read_text()
    assert f"Python {low} to {high}" in readme


def test_setup_makes_a_virtual_environment_and_installs_into_it(project_root, tmp_path):
    venv = tmp_path / "venv"
    result = _make(project_root, "-n", "setup", f"VENV={venv}")
    assert result.returncode == 0, result.stderr
    commands = result.stdout
    assert f"python3 -m venv {venv}" in commands
    assert f'{venv}/bin/python -m pip install -e ".[test]"' in commands
    assert f"{venv}/bin/python -m cnn_feature_behavior.extraction.source_models." in commands
    for target in ("test", "lint", "study"):
        assert f"{venv}/bin/python -m" in _make(project_root, "-n", target, f"VENV={venv}").stdout


def test_setup_into_an_environment_of_ones_own_makes_no_venv(project_root):
    result = _make(project_root, "-n", "setup", f"PYTHON={sys.executable}", "EXTRAS=test,gpu")
    assert result.returncode == 0, result.stderr
    assert " -m venv " not in result.stdout
    assert f'{sys.executable} -m pip install -e ".[test,gpu]"' in result.stdout


def test_setup_names_the_package_to_install_where_venv_is_missing(project_root, tmp_path):
    # ensurepip shadowed by one that cannot be imported, as on Debian without python3-venv.
    fake = tmp_path / "no_ensurepip" / "ensurepip"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('ensurepip is not installed')\n")
    venv = tmp_path / "venv"
    result = _make(
        project_root,
        "setup",
        f"VENV={venv}",
        f"PYTHON={venv}/bin/python",
        f"BASE_PYTHON={sys.executable}",
        env={"PYTHONPATH": str(fake.parent)},
    )
    assert result.returncode != 0
    assert "venv or ensurepip module is missing" in result.stdout
    assert "sudo apt install python3-venv" in result.stdout
    assert "make setup PYTHON=" in result.stdout
    assert not venv.exists()


def test_setup_refuses_a_missing_base_python(project_root, tmp_path):
    venv = tmp_path / "venv"
    result = _make(
        project_root, "setup", f"VENV={venv}", f"PYTHON={venv}/bin/python", "BASE_PYTHON=nopython3"
    )
    assert result.returncode != 0
    assert "no 'nopython3' here" in result.stdout
    assert not venv.exists()


def test_a_target_before_setup_says_to_run_it(project_root, tmp_path):
    venv = tmp_path / "absent"
    result = _make(project_root, "test", f"VENV={venv}", f"PYTHON={venv}/bin/python")
    assert result.returncode != 0
    assert "run 'make setup' first" in result.stdout
    assert "make test PYTHON=" in result.stdout


def test_ci_runs_the_readme_commands_in_the_projects_environment(project_root):
    ci = (project_root / ".ci" / "run").read_text()
    assert re.findall(r"^make \w+$", ci, re.M) == ["make setup", "make lint", "make test"]
    assert "PYTHON" not in ci and "VENV" not in ci
