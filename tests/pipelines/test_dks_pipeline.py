"""The dks pipeline through Kedro's SequentialRunner on in-memory synthetic data."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from cnn_feature_behavior.pipelines.dks import create_pipeline
from cnn_feature_behavior.statistics.dks import side_summary, signed_ks

N_CLASSES, PER_CLASS, PER_LAYER = 8, 50, 200
PLANTED = 5  # features shifted up, and as many shifted down, for each class


class KeptMemoryDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so that tests can read intermediate outputs."""

    def _release(self) -> None:
        pass


def planted_inputs(seed: int = 0) -> dict[str, pd.DataFrame]:
    """Embedding, image_index and manifest of 8 classes x 50 images, 400 features in 2 layers.

    Class k's conv1_1 features 10k..10k+4 are shifted up by 3, 10k+5..10k+9 down by 3; every
    other value is N(0, 1) noise. image_index also lists one image rejected at extraction.
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    values = rng.standard_normal((labels.size, 2 * PER_LAYER)).astype(np.float32)
    for k in range(N_CLASSES):
        values[labels == k, 10 * k : 10 * k + PLANTED] += 3
        values[labels == k, 10 * k + PLANTED : 10 * k + 2 * PLANTED] -= 3
    layers = ["conv1_1"] * PER_LAYER + ["fc6"] * PER_LAYER
    features = [f"{layer}/n{i % PER_LAYER}" for i, layer in enumerate(layers)]
    image_ids = [f"class{label}/img{i:03d}" for i, label in enumerate(labels)]
    embedding = pd.DataFrame(values, index=pd.Index(image_ids, name="image_id"), columns=features)
    image_index = pd.DataFrame(
        {
            "image_id": image_ids + ["class0/rejected"],
            "path": [f"{i}.jpg" for i in image_ids] + ["class0/rejected.jpg"],
            "label": np.append(labels, 0).astype(np.int64),
            "class_name": [f"class{label}" for label in labels] + ["class0"],
        }
    )
    manifest = pd.DataFrame(
        {
            "feature": features,
            "layer": layers,
            "filter": np.arange(2 * PER_LAYER) % PER_LAYER,
            "layer_kind": ["conv"] * PER_LAYER + ["fc"] * PER_LAYER,
        }
    )
    return {"embedding": embedding, "image_index": image_index, "feature_manifest": manifest}


DKS_PARAMS = {"bins": 100, "workers": 2, "histogram_distances": {"bins": 100, "smoothing": 1e-4}}
DKS_OUTPUTS = (
    "dks",
    "dks_class_sizes",
    "kl_divergence",
    "bhattacharyya_distance",
    "dks_layer_summary",
    "dks_histograms",
    "dks_randomised",
    "randomised_pair_counts",
)
CALIBRATION_PARAMS = {"repetitions": 1, "seed": 0, "class_counts_step": 0.01}


def run_dks(
    inputs: dict[str, pd.DataFrame],
    dks_params: dict = DKS_PARAMS,
    interval: str = "side_68",
    calibration_params: dict = CALIBRATION_PARAMS,
) -> DataCatalog:
    catalog = DataCatalog(
        {
            # The node reads the embedding through the lazy view, or takes an in-memory table.
            **{
                ("embedding_columns" if name == "embedding" else name): MemoryDataset(data)
                for name, data in inputs.items()
            },
            "params:dks": MemoryDataset(dks_params),
            "params:calibration": MemoryDataset(calibration_params),
            "params:executor": MemoryDataset("local"),
            "params:dask": MemoryDataset({}),
            "params:dks.layer_summary.interval": MemoryDataset(interval),
            "params:dataset": MemoryDataset("synthetic"),
            **{name: KeptMemoryDataset() for name in DKS_OUTPUTS},
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def test_dks_pipeline_outputs_follow_the_contract(caplog):
    inputs = planted_inputs()
    with caplog.at_level(logging.INFO):
        catalog = run_dks(inputs)
    assert "1 of 401 indexed images have no embedding row" in caplog.text

    dks = catalog.load("dks")
    classes = [f"class{k}" for k in range(N_CLASSES)]
    assert list(dks.columns) == ["layer", *classes]
    assert dks.index.name == "feature" and list(dks.index) == list(
        inputs["feature_manifest"]["feature"]
    )
    assert (dks.dtypes[classes] == np.float32).all()
    assert dks["layer"].tolist() == inputs["feature_manifest"]["layer"].tolist()
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    expected = signed_ks(inputs["embedding"].to_numpy(), labels, classes, bins=100).astype(
        np.float32
    )
    np.testing.assert_array_equal(dks[classes].to_numpy(), expected)
    for k in range(N_CLASSES):
        assert (dks.iloc[10 * k : 10 * k + PLANTED, k + 1] > 0.8).all()
        assert (dks.iloc[10 * k + PLANTED : 10 * k + 2 * PLANTED, k + 1] < -0.8).all()

    sizes = catalog.load("dks_class_sizes")
    assert sizes.to_dict("list") == {
        "label": list(range(N_CLASSES)),
        "class_name": classes,
        "n_images": [PER_CLASS] * N_CLASSES,
    }

    for name in ("kl_divergence", "bhattacharyya_distance"):
        table = catalog.load(name)
        assert table.shape == dks.shape and list(table.columns) == list(dks.columns)
        assert (table[classes].to_numpy() >= 0).all()
    kl = catalog.load("kl_divergence")
    assert kl.iloc[0, 1] > kl.iloc[PER_LAYER:, 1].max()  # planted pair beats every fc6 noise pair

    summary = catalog.load("dks_layer_summary")
    assert summary[["layer", "side"]].values.tolist() == [
        ["conv1_1", "positive"],
        ["conv1_1", "negative"],
        ["fc6", "positive"],
        ["fc6", "negative"],
    ]
    assert (summary["low"] <= summary["mode"]).all() and (summary["mode"] <= summary["high"]).all()
    assert (summary["mean_images_per_class"] == PER_CLASS).all() and (
        summary["dataset"] == "synthetic"
    ).all()
    assert summary["n_pairs"].sum() + int((dks[classes] == 0).sum().sum()) == dks[classes].size
    assert (summary["interval"] == "side_68").all()

    histograms = catalog.load("dks_histograms")
    # The manifest says conv / fc (written before the spatial / head vocabulary): read as such.
    assert histograms["group"].unique().tolist() == ["conv1_1", "fc6", "spatial", "head"]
    np.testing.assert_allclose(histograms.groupby("group")["percent"].sum(), 100)
    assert (histograms.groupby("group").size() == 100).all()


def test_exact_mode_through_the_pipeline():
    inputs = planted_inputs()
    catalog = run_dks(inputs, {**DKS_PARAMS, "bins": None})
    dks = catalog.load("dks")
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    expected = signed_ks(inputs["embedding"].to_numpy(), labels, list(dks.columns[1:]), bins=None)
    np.testing.assert_array_equal(dks.iloc[:, 1:].to_numpy(), expected.astype(np.float32))


def test_class_left_without_images_is_named():
    inputs = planted_inputs()
    index = inputs["image_index"]
    ghost = pd.DataFrame(
        {
            "image_id": ["ghost/img"],
            "path": ["ghost/img.jpg"],
            "label": [N_CLASSES],
            "class_name": ["ghost"],
        }
    )
    inputs["image_index"] = pd.concat([index, ghost], ignore_index=True)
    with pytest.raises(ValueError, match="no images.*ghost"):
        run_dks(inputs)


def test_embedding_image_missing_from_the_index_is_an_error():
    inputs = planted_inputs()
    inputs["image_index"] = inputs["image_index"].iloc[1:]
    with pytest.raises(
        ValueError, match=r"1 embedding image\(s\) are not in image_index.*class0/img000"
    ):
        run_dks(inputs)


def test_manifest_out_of_order_is_an_error():
    inputs = planted_inputs()
    inputs["feature_manifest"] = inputs["feature_manifest"].iloc[::-1].reset_index(drop=True)
    with pytest.raises(
        ValueError, match="embedding column 0 is 'conv1_1/n0' but feature_manifest row 0"
    ):
        run_dks(inputs)


@pytest.mark.parametrize("interval", ["side_68", "central_68"])
def test_the_interval_parameter_reaches_the_layer_summary(interval):
    inputs = planted_inputs()
    catalog = run_dks(inputs, interval=interval)
    summary = catalog.load("dks_layer_summary").set_index(["layer", "side"])
    assert (summary["interval"] == interval).all()
    dks = catalog.load("dks")
    for (layer, side), row in summary.iterrows():
        values = dks.loc[dks["layer"] == layer].drop(columns="layer").to_numpy()
        mode, low, high, n_pairs = side_summary(values, side, interval)
        assert (row["mode"], row["low"], row["high"], row["n_pairs"]) == (mode, low, high, n_pairs)


def test_an_unknown_interval_rule_is_refused_naming_the_parameter():
    with pytest.raises(Exception, match="dks.layer_summary.interval must be one of"):
        run_dks(planted_inputs(), interval="central_95")
