"""Project-level contracts: registry, configuration per dataset, telemetry, kedro-viz."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kedro.config import OmegaConfigLoader

from cnn_feature_behavior.pipeline_registry import AFTER_STUDY, STUDY_ORDER

DATASETS = (
    "imagenet cub200 wood flowers102 caltech101 mit67 textures caltech256 "
    "stanforddogs catsdogs food101 digits"
).split()


def _config(project_root: Path, env: str | None, runtime_params: dict | None = None):
    from cnn_feature_behavior.settings import CONFIG_LOADER_ARGS

    return OmegaConfigLoader(
        str(project_root / "conf"),
        **CONFIG_LOADER_ARGS,
        env=env,
        runtime_params=runtime_params or {},
    )


def test_telemetry_is_off_in_project_files(project_root):
    consent = yaml.safe_load((project_root / ".telemetry").read_text())
    assert consent == {"consent": False}


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_env_names_its_outputs(project_root, dataset):
    config = _config(project_root, dataset, {"source_model": "vgg19_imagenet"})
    assert config["parameters"]["dataset"] == dataset
    assert config["parameters"]["source_model"] == "vgg19_imagenet"
    for name, entry in config["catalog"].items():
        path = entry.get("filepath") or entry.get("path")
        if path is None or name.startswith("all_"):
            continue  # in-memory hand-overs, and the cross-dataset readers
        assert dataset in path or "vgg19_imagenet" in path, (name, path)


def test_default_run_is_digits_with_vgg16_imagenet(project_root):
    params = _config(project_root, None)["parameters"]
    assert params["dataset"] == "digits"
    assert params["source_model"] == "vgg16_imagenet"
    assert params["raw_dir"] == "data/01_raw/digits"
    assert params["crops"] == 1 and params["max_images_per_class"] == 60


def test_outputs_from_feature_extraction_on_carry_the_model_name(project_root):
    catalog = _config(project_root, "caltech101", {"source_model": "vgg16_places365"})["catalog"]
    for name in ("embedding", "feature_manifest", "dks", "thresholds"):
        path = catalog[name].get("filepath") or catalog[name].get("path")
        assert "vgg16_places365" in path and "caltech101" in path, (name, path)


STUDY = (
    "ingestion",
    "feature_extraction",
    "dks",
    "calibration",
    "transfer",
    "retrieval",
    "few_shot",
    "reporting",
)


def test_study_order_is_the_registry_s():
    assert STUDY_ORDER == STUDY and not set(AFTER_STUDY) & set(STUDY)


def test_registry_runs_the_study_in_order(project_root):
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_root)
    registered = set(pipelines) - {"__default__", *AFTER_STUDY}
    assert "__default__" in pipelines
    assert registered <= set(STUDY)
    default = pipelines["__default__"]
    assert {n.name for n in default.nodes} == set().union(
        *({n.name for n in pipelines[name].nodes} for name in registered)
    )
    # __default__ runs the stages in study order: no node depends on a later stage's output.
    stage_of = {n.name: n.namespace for n in default.nodes}
    position = {name: STUDY.index(name) for name in registered}
    for later in default.nodes:
        for earlier in default.nodes:
            if set(earlier.outputs) & set(later.inputs):
                assert position[stage_of[earlier.name]] <= position[stage_of[later.name]], (
                    earlier.name,
                    later.name,
                )


def test_every_node_is_in_its_stage_namespace_and_no_dataset_is_prefixed(project_root):
    """kedro-viz groups the stages by namespace; catalog and --to-outputs names stay as they are."""
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_root)
    registered = set(pipelines) - {"__default__"}
    study = registered - set(AFTER_STUDY)
    config = _config(project_root, None)
    parameters, catalog = config["parameters"], config["catalog"]
    for name in registered:
        for node in pipelines[name].nodes:
            assert node.namespace == name, (name, node.name)
            assert node.name.startswith(f"{name}.") and node.name.count(".") == 1, node.name
    default_namespaces = {node.namespace for node in pipelines["__default__"].nodes}
    assert default_namespaces == study
    for dataset in pipelines["__default__"].datasets():
        if dataset.startswith("params:"):
            # A nested parameter resolves in the base configuration, from its top-level key.
            value = parameters
            for key in dataset.removeprefix("params:").split("."):
                assert key in value, dataset
                value = value[key]
            continue
        assert not any(dataset.startswith(f"{stage}.") for stage in STUDY), dataset
    for public in ("image_index", "embedding", "dks", "dks_layer_summary", "thresholds"):
        assert public in catalog and public in pipelines["__default__"].datasets()
    assert parameters["dks"]["layer_summary"]["interval"] == "side_68"


@pytest.mark.slow
def test_kedro_viz_build_succeeds_offline(project_copy):
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
        cwd=project_copy,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (project_copy / "build" / "index.html").is_file()
