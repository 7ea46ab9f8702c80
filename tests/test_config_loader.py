"""The project's configuration loader: conf/local over every environment, and the catalog's
paths from the run's `source_model` parameter however it was set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from builders.project import project_config

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


def test_a_dataset_parameter_other_than_the_environment_is_refused(project_copy):
    with pytest.raises(ValueError, match=r"choose the dataset with `--env flowers102`"):
        _loader(project_copy, "caltech101", {"dataset": "flowers102"})["parameters"]
    _write(project_copy / "conf/local/parameters.yml", {"dataset": "wood"})
    with pytest.raises(ValueError, match=r"parameter dataset is 'wood'"):
        _loader(project_copy)["catalog"]


MODEL_OUTPUTS = ("embedding", "feature_manifest", "dks", "thresholds", "transfer_results")


@pytest.mark.parametrize("where", ["environment", "local", "command line"])
def test_source_model_from_any_configuration_names_the_output_paths(project_copy, where):
    runtime_params = {}
    if where == "environment":
        _write(project_copy / "conf/caltech101/parameters.yml", {"source_model": "vgg19_imagenet"})
    elif where == "local":
        _write(project_copy / "conf/local/parameters.yml", {"source_model": "vgg19_imagenet"})
    else:
        _write(project_copy / "conf/local/parameters.yml", {"source_model": "resnet50_imagenet"})
        runtime_params = {"source_model": "vgg19_imagenet"}
    config = _loader(project_copy, "caltech101", runtime_params)
    assert config["parameters"]["source_model"] == "vgg19_imagenet"
    catalog = config["catalog"]
    for name in MODEL_OUTPUTS:
        assert "/vgg19_imagenet/" in _path(catalog, name), (name, _path(catalog, name))
    assert catalog["index_html"]["filepath"] == "data/08_reporting/vgg19_imagenet/index.html"
    assert not any("vgg16_imagenet" in str(entry) for entry in catalog.values())


def test_no_catalog_reads_the_source_model_from_runtime_params_alone(project_root):
    """One source of truth: the catalog reads the source_model parameter, never `runtime_params:`
    (which a parameters file never reaches) nor a global of its own."""
    for path in sorted((project_root / "conf").glob("*/catalog*.yml")):
        text = path.read_text()
        assert "runtime_params:" not in text, path
        assert "source_model" not in text or "${params:source_model}" in text, path
    assert "source_model" not in str(project_config(project_root)._globals)


def _tiny_vgg_weights(path: Path) -> Path:
    from cnn_feature_behavior.extraction.source_models import build_tiny_vgg
    from cnn_feature_behavior.extraction.source_models.weight_files import write_legacy_h5

    model = build_tiny_vgg(include_fc=False, input_size=None)
    write_legacy_h5(
        {layer.name: tuple(layer.get_weights()) for layer in model.layers if layer.weights}, path
    )
    return path


@pytest.mark.slow
def test_session_run_writes_under_the_source_model_of_conf_local(
    project_copy, tmp_path, monkeypatch
):
    """Through Kedro's session and runner: a source model chosen in conf/local/parameters.yml
    names the extraction's outputs (before, they went to vgg16_imagenet/)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    tiny = _tiny_vgg_weights(tmp_path / "tiny_vgg.h5")
    local = {
        "source_model": "tiny_vgg",
        "source_models": {
            "tiny_vgg": {
                "architecture": "vgg16",
                "preprocessing": "caffe",
                "layers": ["conv1_1", "conv5_3"],
                "weights": [{"source": "file", "path": str(tiny)}],
            }
        },
        "max_images_per_class": 2,
    }
    _write(project_copy / "conf/local/parameters.yml", local)
    monkeypatch.chdir(project_copy)
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy) as session:
        session.run(pipeline_names=["ingestion", "feature_extraction"])
    features = project_copy / "data/04_feature"
    assert sorted(p.name for p in features.iterdir() if p.is_dir()) == ["tiny_vgg"]
    manifest = pd.read_parquet(features / "tiny_vgg/digits/feature_manifest.parquet")
    assert list(pd.unique(manifest["layer"])) == ["conv1_1", "conv5_3"]
    weights = pd.read_parquet(features / "tiny_vgg/digits/weights_provenance.parquet").iloc[0]
    assert (weights["source_model"], weights["path"], weights["published"]) == (
        "tiny_vgg",
        str(tiny),
        False,
    )
    assert weights["provenance"] == "user file, not verified against the published weights"
