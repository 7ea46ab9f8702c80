"""The calibration pipeline through Kedro's SequentialRunner, on data with planted signal."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from test_dks_pipeline import (
    DKS_PARAMS,
    N_CLASSES,
    PER_CLASS,
    PLANTED,
    KeptMemoryDataset,
    planted_inputs,
    run_dks,
)

from cnn_feature_behavior.pipelines.calibration import create_pipeline
from cnn_feature_behavior.pipelines.calibration.nodes import fit_threshold_model

CALIBRATION_OUTPUTS = (
    "davg_curve",
    "class_counts",
    "layer_kept",
    "thresholds",
    "threshold_fit",
)


def run_calibration(
    seed: int = 0, repetitions: int = 1, all_thresholds: dict | None = None
) -> dict[str, pd.DataFrame]:
    inputs = planted_inputs()
    calibration_params = {"repetitions": repetitions, "seed": seed, "class_counts_step": 0.01}
    # The randomised DKS comes from the dks pipeline's single read of the embedding.
    dks_catalog = run_dks(inputs, calibration_params=calibration_params)
    catalog = DataCatalog(
        {
            **{name: MemoryDataset(data) for name, data in inputs.items()},
            **{
                name: MemoryDataset(dks_catalog.load(name))
                for name in ("dks", "dks_class_sizes", "dks_randomised", "randomised_pair_counts")
            },
            "params:dks": MemoryDataset(DKS_PARAMS),
            "params:calibration": MemoryDataset(calibration_params),
            "params:dataset": MemoryDataset("synthetic"),
            "params:source_model": MemoryDataset("vgg16_imagenet"),
            "all_thresholds": MemoryDataset(all_thresholds or {}),
            **{name: KeptMemoryDataset() for name in CALIBRATION_OUTPUTS},
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return {
        "dks": dks_catalog.load("dks"),
        "dks_randomised": dks_catalog.load("dks_randomised"),
        **{name: catalog.load(name) for name in CALIBRATION_OUTPUTS},
    }


@pytest.fixture(scope="module")
def calibrated() -> dict[str, pd.DataFrame]:
    return run_calibration()


def planted_values(dks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    up = np.concatenate([dks.iloc[10 * k : 10 * k + PLANTED, k + 1] for k in range(N_CLASSES)])
    down = np.concatenate(
        [dks.iloc[10 * k + PLANTED : 10 * k + 2 * PLANTED, k + 1] for k in range(N_CLASSES)]
    )
    return up, down


def test_planted_signal_is_found_and_shuffled_labels_lose_it(calibrated):
    up, down = planted_values(calibrated["dks"])
    assert up.min() > 0.8 and down.max() < -0.8

    randomised = calibrated["dks_randomised"]
    assert list(randomised.columns) == ["layer", *[f"random_{k}" for k in range(N_CLASSES)]]
    assert np.abs(randomised.iloc[:, 1:].to_numpy()).max() < 0.5

    counts = (
        calibrated["class_counts"].set_index(["side", "x", "labels", "class"])["count"].sort_index()
    )
    for side, x in (("positive", 0.5), ("negative", -0.5)):
        assert (counts.loc[(side, x, "real")] == PLANTED).all()  # exactly the planted features
        assert (counts.loc[(side, x, "randomised")] == 0).all()  # collapsed


def test_thresholds_keep_the_planted_pairs_and_discard_most_noise(calibrated):
    thresholds = calibrated["thresholds"].iloc[0]
    up, down = planted_values(calibrated["dks"])
    assert 0 < thresholds["t_plus"] < up.min() and down.max() < thresholds["t_minus"] < 0
    assert thresholds["features_relevant_plus"] >= N_CLASSES * PLANTED
    assert thresholds["mean_images_per_class"] == PER_CLASS
    assert (thresholds["repetitions"], thresholds["seed"], thresholds["source_model"]) == (
        1,
        0,
        "vgg16_imagenet",
    )

    curve = calibrated["davg_curve"]
    assert len(curve) == 2001
    for side, t, best in (
        ("positive", "t_plus", "davg_t_plus"),
        ("negative", "t_minus", "davg_t_minus"),
    ):
        on_side = curve[curve["side"] == side]
        assert thresholds[best] == on_side["davg"].max()
        at_max = on_side["x"][on_side["davg"] == on_side["davg"].max()]
        assert (
            thresholds[t] == at_max.iloc[np.argmin(np.abs(at_max.to_numpy()))]
        )  # nearest 0 on ties
        np.testing.assert_allclose(
            on_side["davg"], on_side["mean_count_real"] - on_side["mean_count_randomised"]
        )

    kept = calibrated["layer_kept"].set_index(["layer", "side"])
    assert kept.index.get_level_values("layer").unique().tolist() == [
        "conv1_1",
        "fc6",
        "spatial",
        "head",
        "all",
    ]
    planted_gain = (
        kept.loc[("conv1_1", "both"), "percent_real"]
        - kept.loc[("conv1_1", "both"), "percent_randomised"]
    )
    noise_gain = (
        kept.loc[("fc6", "both"), "percent_real"] - kept.loc[("fc6", "both"), "percent_randomised"]
    )
    assert planted_gain > 3 * abs(noise_gain)
    assert kept.loc[("all", "both"), "percent_randomised"] < 50


def test_same_seed_same_outputs_other_seed_other_permutation(calibrated):
    again = run_calibration(seed=0)
    for name in CALIBRATION_OUTPUTS:
        pd.testing.assert_frame_equal(calibrated[name], again[name])
    other = run_calibration(seed=1, repetitions=2)
    assert not other["dks_randomised"].equals(calibrated["dks_randomised"])
    assert other["thresholds"]["repetitions"].iloc[0] == 2


def thresholds_row(dataset: str, mean_images: float, t_plus: float, t_minus: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "dataset": dataset,
                "source_model": "vgg16_imagenet",
                "t_plus": t_plus,
                "davg_t_plus": 1.0,
                "t_minus": t_minus,
                "davg_t_minus": 1.0,
                "features_relevant_plus": 1,
                "features_relevant_minus": 1,
                "mean_images_per_class": mean_images,
                "repetitions": 1,
                "seed": 0,
            }
        ]
    )


def test_fit_with_one_dataset_writes_nan_and_says_why(caplog):
    with caplog.at_level(logging.WARNING):
        fit = fit_threshold_model({}, thresholds_row("digits", 180.0, 0.1, -0.1))
    assert fit["threshold"].tolist() == ["t_plus", "t_minus"]
    assert fit[["a", "b", "r_squared"]].isna().all().all() and (fit["n_datasets"] == 1).all()
    assert "only 1 dataset(s)" in caplog.text


def test_fit_recovers_a_log_law_and_prefers_this_runs_row():
    def on_the_law(name: str, m: float) -> pd.DataFrame:
        return thresholds_row(name, m, 0.4 - 0.05 * np.log(m), -0.3 + 0.04 * np.log(m))

    means = {"a": 20.0, "b": 50.0, "c": 120.0, "d": 1000.0}
    partitions = {name: (lambda name=name, m=m: on_the_law(name, m)) for name, m in means.items()}
    partitions["d"] = lambda: thresholds_row(
        "d", 1000.0, 9.0, 9.0
    )  # stale row of this run's dataset
    fit = fit_threshold_model(partitions, on_the_law("d", 1000.0))
    fit = fit.set_index("threshold")
    np.testing.assert_allclose(
        fit.loc["t_plus", ["a", "b", "r_squared"]].astype(float), [0.4, -0.05, 1.0]
    )
    np.testing.assert_allclose(
        fit.loc["t_minus", ["a", "b", "r_squared"]].astype(float), [-0.3, 0.04, 1.0]
    )
    assert (fit["n_datasets"] == 4).all()


def test_fit_rejects_a_malformed_partition():
    with pytest.raises(ValueError, match="partition 'broken' lacks column"):
        fit_threshold_model(
            {"broken": lambda: pd.DataFrame({"dataset": ["x"]})},
            thresholds_row("d", 10.0, 0.1, -0.1),
        )
