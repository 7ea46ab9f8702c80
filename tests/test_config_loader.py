"""The project's configuration loader: conf/local over every environment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cnn_feature_behavior.config_loader import StudyConfigLoader
from cnn_feature_behavior.settings import CONFIG_LOADER_ARGS


def _write(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content))


def _loader(project: Path, env: str | None = None, runtime_params: dict | None = None):
    """As `kedro run` in `project` configures it (settings.py), conf/local included."""
    return StudyConfigLoader(
        str(project / "conf"), **CONFIG_LOADER_ARGS, env=env, runtime_params=runtime_params or {}
    )


def _path(catalog: dict, name: str) -> str:
    return catalog[name].get("filepath") or catalog[name]["path"]


LOCAL_PARAMETERS = {
    "crops": 3,
    "transfer": {"maps": {"embeddings": ["block4c_add", "full_network"]}},
}


@pytest.mark.parametrize("env", [None, "caltech101", "flowers102", "base"])
def test_local_parameters_override_base_and_every_environment(project_copy, env):
    _write(project_copy / "conf/local/parameters_mine.yml", LOCAL_PARAMETERS)
    parameters = _loader(project_copy, env)["parameters"]
    assert parameters["crops"] == 3  # base 10, digits 1
    assert parameters["transfer"]["maps"]["embeddings"] == ["block4c_add", "full_network"]
    # Merged key by key: the other keys of the blocks stay the environment's and base's.
    assert parameters["transfer"]["maps"]["max_images"] == 2000
    expected_train = 30 if env == "caltech101" else None
    assert parameters["transfer"]["split"]["train_per_class"] == expected_train
    assert parameters["dataset"] == {None: "digits", "base": "digits"}.get(env, env)


def test_command_line_params_override_local(project_copy):
    _write(project_copy / "conf/local/parameters.yml", LOCAL_PARAMETERS)
    parameters = _loader(project_copy, "caltech101", {"crops": 5})["parameters"]
    assert parameters["crops"] == 5
    assert parameters["transfer"]["maps"]["embeddings"] == ["block4c_add", "full_network"]


def test_local_catalog_entries_and_credentials_apply_to_every_environment(project_copy):
    entry = {"type": "pandas.ParquetDataset", "filepath": "/elsewhere/dks.parquet"}
    _write(project_copy / "conf/local/catalog.yml", {"dks": entry})
    _write(project_copy / "conf/local/credentials.yml", {"my_store": {"token": "secret"}})
    for env in (None, "caltech101"):
        config = _loader(project_copy, env)
        assert config["catalog"]["dks"] == entry
        assert config["credentials"] == {"my_store": {"token": "secret"}}


def test_env_local_reads_local_once(project_copy):
    _write(project_copy / "conf/local/parameters.yml", {"crops": 3})
    parameters = _loader(project_copy, "local")["parameters"]
    assert parameters["crops"] == 3 and parameters["dataset"] == "digits"


def test_a_project_without_conf_local_loads(project_copy):
    (project_copy / "conf/local").rmdir()
    assert _loader(project_copy, "caltech101")["parameters"]["dataset"] == "caltech101"


def test_local_globals_may_not_choose_the_dataset(project_copy):
    _write(project_copy / "conf/local/globals.yml", {"dataset": "flowers102"})
    with pytest.raises(ValueError, match=r"conf/local applies to every environment.*--env"):
        _loader(project_copy, "caltech101")
