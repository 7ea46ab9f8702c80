"""The DKS symmetry table beside Figure 6: moments of a histogram against scipy on the raw
values, the old conv / fc groups read as spatial / head, and source models side by side."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cnn_feature_behavior.reporting import study
from cnn_feature_behavior.reporting.symmetry import (
    dks_symmetry,
    histogram_moments,
    symmetry_by_model,
)

EDGES = np.linspace(-1, 1, 101)  # the dks pipeline's 100 bins


def histogram_rows(values: np.ndarray, dataset: str, group: str) -> pd.DataFrame:
    counts = np.histogram(values, EDGES)[0]
    return pd.DataFrame(
        {
            "dataset": dataset,
            "group": group,
            "bin_left": EDGES[:-1],
            "bin_right": EDGES[1:],
            "percent": 100 * counts / counts.sum(),
        }
    )


@pytest.mark.parametrize("shape", ["skewed right", "skewed left", "symmetric"])
def test_histogram_moments_match_scipy_on_the_raw_values(shape):
    rng = np.random.default_rng(1)
    raw = rng.gamma(2.0, 0.08, 200_000) - 0.1
    values = {"skewed right": raw, "skewed left": -raw, "symmetric": rng.normal(0, 0.2, 200_000)}
    x = np.clip(values[shape], -1, 1)
    moments = histogram_moments(EDGES[:-1], EDGES[1:], np.histogram(x, EDGES)[0])
    # Binning into 0.02-wide bins moves the moments a little; the sign and size must hold.
    assert moments["skewness"] == pytest.approx(stats.skew(x), abs=0.03)
    assert moments["mean_dks"] == pytest.approx(x.mean(), abs=1e-3)
    assert moments["percent_above_zero"] == pytest.approx(100 * (x > 0).mean(), abs=0.6)


def test_histogram_moments_refuse_an_empty_histogram():
    with pytest.raises(ValueError, match="positive sum"):
        histogram_moments(EDGES[:-1], EDGES[1:], np.zeros(100))


def test_old_conv_fc_groups_read_as_spatial_and_head_and_layers_are_ignored():
    rng = np.random.default_rng(2)
    spatial = rng.normal(0, 0.1, 5000)
    head = rng.gamma(2.0, 0.1, 5000) - 0.2
    old = pd.concat(
        [
            histogram_rows(spatial, "wood", "conv"),
            histogram_rows(head, "wood", "fc"),
            histogram_rows(head, "wood", "fc7"),  # one layer: not a kind
            histogram_rows(head, "wood", "all"),
        ]
    )
    new = old.replace({"group": {"conv": "spatial", "fc": "head"}})
    table = dks_symmetry(old)
    pd.testing.assert_frame_equal(table, dks_symmetry(new))
    assert table["layer_kind"].tolist() == ["spatial layers", "head layers"]
    skew = table.set_index("layer_kind")["skewness"]
    assert abs(skew["spatial layers"]) < 0.2 < skew["head layers"]
    with pytest.raises(ValueError, match="wood, head layers"):
        dks_symmetry(new.assign(percent=np.where(new["group"] == "head", 0.0, new["percent"])))


def test_symmetry_by_model_puts_the_models_of_a_dataset_side_by_side():
    rng = np.random.default_rng(3)

    def both_kinds(dataset):
        return pd.concat(
            [
                histogram_rows(rng.normal(0, 0.1, 2000), dataset, "spatial"),
                histogram_rows(rng.normal(0, 0.1, 2000), dataset, "head"),
            ]
        )

    table = symmetry_by_model(
        {
            "vgg16_imagenet": pd.concat([both_kinds("wood"), both_kinds("digits")]),
            "efficientnet_lite0_imagenet": both_kinds("wood"),
        }
    )
    assert list(table[["dataset", "layer_kind", "source_model"]].itertuples(index=False)) == [
        ("digits", "spatial layers", "vgg16_imagenet"),
        ("digits", "head layers", "vgg16_imagenet"),
        ("wood", "spatial layers", "efficientnet_lite0_imagenet"),
        ("wood", "spatial layers", "vgg16_imagenet"),
        ("wood", "head layers", "efficientnet_lite0_imagenet"),
        ("wood", "head layers", "vgg16_imagenet"),
    ]
    assert symmetry_by_model({}).empty


def test_transfer_side_by_side_has_one_column_per_source_model():
    across = pd.DataFrame(
        {
            "dataset": ["digits", "wood", "wood"],
            "source_model": ["vgg16_imagenet", "efficientnet_lite0_imagenet", "vgg16_imagenet"],
            "best_layer": ["fc7", "block6a_project_bn", "conv5_1"],
            "best_layer_mean_per_class_accuracy": [0.9, 0.8, np.nan],
        }
    )
    table = study.transfer_side_by_side(across)
    assert table.columns.tolist() == ["dataset", "efficientnet_lite0_imagenet", "vgg16_imagenet"]
    assert table.values.tolist() == [
        ["digits", "not run", "fc7: 0.900"],
        ["wood", "block6a_project_bn: 0.800", "n/a"],
    ]
    assert study.transfer_side_by_side(across[across["dataset"] == "digits"]).empty


def test_transfer_side_by_side_names_the_classifiers_where_a_dataset_row_mixes_them():
    # auto chooses the classifier from each run's size: two source models of one dataset can be
    # fitted by different ones, and a row setting their accuracies side by side would compare
    # classifiers as much as models.
    across = pd.DataFrame(
        {
            "dataset": ["digits", "digits", "wood", "wood"],
            "source_model": ["lite0", "vgg16", "lite0", "vgg16"],
            "solver": ["logistic_regression"] * 3 + ["discriminant"],
            "best_layer": ["a", "fc7", "b", "conv5_1"],
            "best_layer_mean_per_class_accuracy": [0.7, 0.9, 0.8, 0.85],
        }
    )
    table = study.transfer_side_by_side(across)
    assert table.values.tolist() == [
        ["digits", "a: 0.700", "fc7: 0.900"],
        ["wood", "b: 0.800 (logistic_regression)", "conv5_1: 0.850 (discriminant)"],
    ]
