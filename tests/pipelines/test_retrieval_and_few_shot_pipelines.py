"""The retrieval and few_shot pipelines through Kedro's SequentialRunner on planted data."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from test_dks_pipeline import N_CLASSES, KeptMemoryDataset, planted_inputs

from cnn_feature_behavior.pipelines.few_shot import create_pipeline as few_shot_pipeline
from cnn_feature_behavior.pipelines.retrieval import create_pipeline as retrieval_pipeline
from cnn_feature_behavior.transfer.splits import transfer_splits

FNE = {"positive": 0.15, "negative": -0.25}


def run(pipeline, inputs: dict, output: str) -> pd.DataFrame:
    catalog = DataCatalog(
        {
            **{name: MemoryDataset(data) for name, data in inputs.items()},
            "params:transfer.fne": MemoryDataset(FNE),
            "params:dataset": MemoryDataset("synthetic"),
            "params:source_model": MemoryDataset("vgg16_imagenet"),
            output: KeptMemoryDataset(),
        }
    )
    SequentialRunner().run(pipeline, catalog)
    return catalog.load(output)


def test_retrieval_pipeline_scores_every_embedding():
    inputs = planted_inputs()
    table = run(retrieval_pipeline(), {**inputs, "params:retrieval": {"k": 10}}, "retrieval_scores")
    assert table["embedding"].tolist() == ["layer", "layer", "full_network", "fne"]
    assert table["layer"].tolist() == ["conv1_1", "fc6", None, None]
    assert (table["dataset"] == "synthetic").all() and (table["n_images"] == 400).all()
    by_name = table.set_index(table["layer"].fillna(table["embedding"]))["map_at_k"]
    # conv1_1 carries the planted classes, fc6 is noise (chance: about 1 / 8).
    assert by_name["conv1_1"] > 0.8 and by_name["fc6"] < 0.3


def test_few_shot_pipeline_draws_from_the_transfer_splits():
    inputs = planted_inputs()
    splits = transfer_splits(inputs["image_index"], {"repetitions": 2})
    table = run(
        few_shot_pipeline(),
        {
            **inputs,
            "transfer_splits": splits,
            "params:few_shot": {"shots": [1, 5], "episodes": 4},
        },
        "few_shot_results",
    )
    assert len(table) == 4 * 2 * 2  # embeddings x k x methods
    assert (table["split_source"] == "seeded").all() and (table["episodes"] == 4).all()
    assert (table["n_classes"] == N_CLASSES).all()
    # The test images of each split: the other half of the 50 per class (one image of class 0
    # is in the index but was rejected at extraction).
    assert set(table["n_test"]) == {200}
    five = table[(table["k"] == 5) & (table["layer"] == "conv1_1")]
    assert (five["mean"] > 0.9).all(), five


def test_few_shot_pipeline_refuses_an_embedded_image_without_a_split():
    inputs = planted_inputs()
    splits = transfer_splits(inputs["image_index"], {"repetitions": 1})
    splits = splits[splits["image_id"] != inputs["embedding"].index[3]]
    with pytest.raises(Exception, match="have no split"):
        run(
            few_shot_pipeline(),
            {**inputs, "transfer_splits": splits, "params:few_shot": {"episodes": 2}},
            "few_shot_results",
        )
