"""The whole study, as a user runs it, on real photographs: caltech101-mini, default weights, 1 crop."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from builders.project import PROJECT_ROOT

WEIGHTS = PROJECT_ROOT / "data" / "06_models" / "vgg16_imagenet_conv.h5"


@pytest.mark.slow
def test_full_study_on_caltech101_mini(project_copy, shared_datasets):
    if not WEIGHTS.is_file():
        pytest.skip(f"default weights not fetched ({WEIGHTS} absent): run `make setup`")
    raw_dir = shared_datasets / "caltech101-mini"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kedro",
            "run",
            "--env",
            "caltech101",
            "--params",
            f"raw_dir={raw_dir},crops=1",
        ],
        cwd=project_copy,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]

    model_output = project_copy / "data" / "07_model_output" / "vgg16_imagenet"
    report_dir = project_copy / "data" / "08_reporting" / "vgg16_imagenet" / "caltech101"
    report = report_dir / "report.html"
    assert report.is_file() and report.stat().st_size > 100_000  # figures are embedded
    assert str(report) in " ".join(log.split()), "the run must say where the report is"

    index = pd.read_parquet(project_copy / "data/02_intermediate/caltech101/image_index.parquet")
    assert len(index) == 160 and index["label"].nunique() == 8

    dks = pd.read_parquet(model_output / "caltech101" / "dks.parquet")
    assert dks.shape == (4224, 1 + 8)  # conv layers only with the offline weights, 8 classes

    # Figure 9's real and randomised curves clearly apart: at the thresholds, real classes keep
    # several times more features than randomised ones.
    curve = pd.read_parquet(model_output / "caltech101" / "davg_curve.parquet")
    thresholds = pd.read_parquet(model_output / "thresholds" / "caltech101.parquet").iloc[0]
    for side, threshold in (
        ("positive", thresholds["t_plus"]),
        ("negative", thresholds["t_minus"]),
    ):
        at = curve[(curve["side"] == side) & ((curve["x"] - threshold).abs() < 5e-4)].iloc[0]
        assert at["mean_count_real"] > 3 * at["mean_count_randomised"], (side, at.to_dict())
    assert 0.05 < thresholds["t_plus"] < 0.6 and -0.6 < thresholds["t_minus"] < -0.05

    # Transfer: caltech101 has no official split, so three seeded draws; 20 images per class are
    # too few for the customary 30 training images, so each class trains on half (10).
    transfer = pd.read_parquet(model_output / "transfer_results" / "caltech101.parquet")
    assert set(transfer["split_source"]) == {"seeded"}
    assert sorted(transfer["repetition"].unique()) == [0, 1, 2]
    assert (transfer["n_train"] == 80).all() and (transfer["n_test"] == 80).all()
    layers = transfer[transfer["embedding"] == "layer"].groupby("layer")["accuracy"].mean()
    assert layers["conv5_3"] >= 0.8, layers.to_dict()
    curve = transfer[transfer["selection"].notna()]
    assert set(curve["selection"]) == {"dks_count", "random"}
