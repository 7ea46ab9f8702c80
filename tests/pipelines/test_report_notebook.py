"""The reporting pipeline through a KedroSession on a temporary copy of the project, from
synthetic upstream outputs written through the project's own catalog; then the notebook,
executed top to bottom against those outputs with the network blocked in its kernel."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from builders.project import PROJECT_ROOT, make_project_copy
from builders.report_synthetic import (
    embedding_plan,
    synthetic_embedding_maps,
    synthetic_few_shot_results,
    synthetic_retrieval_scores,
    synthetic_study,
    synthetic_transfer_comparisons,
    synthetic_transfer_results,
    threshold_fit,
)
from kedro.config import OmegaConfigLoader
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog
from PIL import Image

from cnn_feature_behavior.settings import CONFIG_LOADER_ARGS

MODEL = "vgg16_imagenet"
CROSS_DATASET_INPUTS = ("dataset_properties", "thresholds", "dks_layer_summary", "dks_histograms")
RUN_INPUTS = CROSS_DATASET_INPUTS + (
    "image_index",
    "dks",
    "davg_curve",
    "class_counts",
    "layer_kept",
)

NETWORK_GUARD = """
import os
import socket

_real_connect = socket.socket.connect


def _guarded_connect(sock, address):
    host = address[0] if isinstance(address, tuple) else address
    local = not isinstance(host, str) or host in ("localhost", "::1") or host.startswith("127.")
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not local:
        with open(os.environ["CNN_FB_NETWORK_LOG"], "a") as log:
            log.write(f"{address!r}\\n")
        raise OSError(f"network blocked in the notebook test: {address!r}")
    return _real_connect(sock, address)


socket.socket.connect = _guarded_connect
"""


def write_upstream_outputs(project: Path) -> None:
    """digits as this run (the default env), caltech101 as a dataset run before."""
    studies = {
        "caltech101": (synthetic_study("caltech101", 5, 20, seed=1), "caltech101"),
        "digits": (synthetic_study("digits", 6, 30, seed=0), None),
    }
    for study, env in studies.values():
        loader = OmegaConfigLoader(str(project / "conf"), **CONFIG_LOADER_ARGS, env=env)
        catalog = DataCatalog.from_config(loader["catalog"])
        for name in RUN_INPUTS if env is None else CROSS_DATASET_INPUTS:
            catalog.save(name, study[name])
        if env is None:
            catalog.save("embedding", embedding_plan(study["embedding"]))
            results = synthetic_transfer_results("digits")
            catalog.save("transfer_results", results)
            catalog.save("transfer_comparisons", synthetic_transfer_comparisons(results))
            catalog.save("embedding_maps", synthetic_embedding_maps("digits", n_classes=6))
            catalog.save("retrieval_scores", synthetic_retrieval_scores("digits"))
            catalog.save("few_shot_results", synthetic_few_shot_results("digits"))
            catalog.save(
                "threshold_fit",
                threshold_fit(
                    pd.concat([s["thresholds"] for s, _ in studies.values()], ignore_index=True)
                ),
            )


def write_images(image_index: pd.DataFrame, raw_dir: Path) -> None:
    """A small image per index row, a different colour per class, for the top-feature patches."""
    rng = np.random.default_rng(0)
    for path, label in image_index[["path", "label"]].itertuples(index=False):
        pixels = rng.integers(0, 80, (72, 96, 3), dtype=np.uint8)
        pixels[20:50, 30:60, label % 3] = 255
        (raw_dir / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(raw_dir / path)


@pytest.fixture(scope="module")
def reported_project(tmp_path_factory) -> Path:
    """A project copy holding upstream outputs and a finished reporting run; the top-feature
    patches come from a seeded tiny VGG with the real layer names instead of VGG16's weights."""
    import cnn_feature_behavior.extraction.source_models as source_models

    project = make_project_copy(tmp_path_factory.mktemp("reporting") / "project")
    tiny_vgg = source_models.build_tiny_vgg(base_filters=8, input_size=224, seed=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)  # the catalog's paths are relative to the project
        patch.setattr(source_models, "load_backbone", lambda *args, **kwargs: tiny_vgg)
        write_upstream_outputs(project)
        write_images(
            pd.read_parquet(project / "data/02_intermediate/digits/image_index.parquet"),
            project / "data/01_raw/digits",
        )
        bootstrap_project(project)
        with KedroSession.create(project_path=project) as session:
            session.run(pipeline_name="reporting")
    return project


@pytest.mark.slow
def test_reporting_run_writes_reports_through_the_catalog(reported_project):
    dataset_dir = reported_project / "data/08_reporting" / MODEL / "digits"
    written = sorted(path.name for path in dataset_dir.iterdir())
    assert written == sorted(
        [
            "davg_curve.png",
            "embedding_maps.png",
            "figure_10_layer_kept.png",
            "figure_1_feature_class_pair.png",
            "figure_6_dks_histograms.png",
            "figure_9_class_counts.png",
            "few_shot_accuracy_per_layer.png",
            "report.html",
            "report.md",
            "table_2_dataset_properties.csv",
            "table_2_dataset_properties.md",
            "table_3_thresholds.csv",
            "table_3_thresholds.md",
            "table_few_shot.csv",
            "table_few_shot.md",
            "table_search_and_transfer_per_layer.csv",
            "table_search_and_transfer_per_layer.md",
            "table_transfer.csv",
            "table_transfer.md",
            "table_transfer_comparisons.csv",
            "table_transfer_comparisons.md",
            # feature_visualisation.max_classes of the 6 classes, in label order
            "top_features_class_a.png",
            "top_features_class_b.png",
            "top_features_class_c.png",
            "top_features_class_d.png",
            "transfer_accuracy_by_features_kept.png",
            "transfer_accuracy_per_layer.png",
        ]
    )
    report = (dataset_dir / "report.md").read_text()
    for name in re.findall(r"!\[[^]]*\]\(([^)]+)\)", report):
        assert (dataset_dir / name).stat().st_size > 10_000
    index = (reported_project / "data/08_reporting" / MODEL / "index.md").read_text()
    # Both datasets, by mean images per class: caltech101 (20) before digits (30).
    assert index.index("| caltech101 |") < index.index("| digits |")
    study_thresholds = pd.read_csv(
        reported_project / "data/08_reporting" / MODEL / "table_3_thresholds.csv"
    )
    assert list(study_thresholds["dataset"]) == ["caltech101", "digits"]
    for name in (
        "figure_5_layer_summary.png",
        "figure_6_dks_histograms_across_datasets.png",
        "figure_8_fc_histograms.png",
        "threshold_fit.png",
        "few_shot_accuracy_across_datasets.png",
        "table_search_and_few_shot_across_datasets.csv",
        "index.html",
    ):
        assert (reported_project / "data/08_reporting" / MODEL / name).is_file(), name


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_offline(reported_project, tmp_path):
    pytest.importorskip("nbconvert", reason="nbconvert is not installed (pip install -e .[test])")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no 'python3' Jupyter kernel is installed (pip install ipykernel)")
    notebooks = reported_project / "notebooks"
    shutil.copytree(PROJECT_ROOT / "notebooks", notebooks, dirs_exist_ok=True)
    stored = nbformat.read(notebooks / "explore_dks.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in stored.cells if cell.cell_type == "code"), (
        "the notebook is stored with outputs"
    )

    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NETWORK_GUARD)
    network_log = tmp_path / "network.log"
    env = {
        **os.environ,
        "CNN_FB_NETWORK_LOG": str(network_log),
        "DO_NOT_TRACK": "1",
        "KEDRO_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=300",
            "--ExecutePreprocessor.kernel_name=python3",
            "--output-dir",
            str(tmp_path),
            "explore_dks.ipynb",
        ],
        cwd=notebooks,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not network_log.exists(), network_log.read_text()

    executed = nbformat.read(tmp_path / "explore_dks.ipynb", as_version=4)
    outputs = [
        output for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("image/png" in output.get("data", {}) for output in outputs)
    text = "".join(output.get("text", "") for output in outputs)
    assert "digits on vgg16_imagenet: 30 features x 6 classes" in text
    assert "class 'class a' of digits: presence (highest DKS)" in text
    # Kedro's rich log lines come out as HTML too: the two tables are the DataFrames.
    tables = [
        output["data"]["text/html"]
        for output in outputs
        if "<table" in output.get("data", {}).get("text/html", "")
    ]
    assert len(tables) == 2 and all("beyond threshold" in table for table in tables)
    report = reported_project / "data/08_reporting" / MODEL / "digits" / "report.html"
    assert str(report) in text and report.is_file()
