"""The one function every cross-dataset step gathers stored partitions with."""

from __future__ import annotations

import pandas as pd
import pytest

from cnn_feature_behavior.statistics.partitions import (
    check_dataset_column,
    gather_partitions,
    model_table_key,
    split_model_table_key,
)


def test_this_runs_table_replaces_its_file_which_is_never_loaded_and_comes_last():
    stored = {
        "wood": lambda: "wood stored",
        "digits": lambda: pytest.fail("this run's stale file must not be read"),
        "cub200": lambda: "cub200 stored",
    }
    gathered = gather_partitions(stored, "digits now", "digits")
    assert list(gathered.items()) == [
        ("cub200", "cub200 stored"),
        ("wood", "wood stored"),
        ("digits", "digits now"),
    ]


def test_select_keeps_only_the_keys_asked_for():
    stored = {
        model_table_key("vgg16_imagenet", "transfer_results", "wood"): lambda: 1,
        "vgg16_imagenet/thresholds/wood": lambda: pytest.fail("not selected"),
        "vgg16_imagenet/digits/dks": lambda: pytest.fail("not selected"),
    }

    def is_transfer(key: str) -> bool:
        return split_model_table_key(key)[1] == "transfer_results"

    gathered = gather_partitions(stored, 2, "vgg16_imagenet/transfer_results/digits", is_transfer)
    assert list(gathered.values()) == [1, 2]
    assert split_model_table_key("wood") is None


def test_a_table_filed_under_another_datasets_name_is_an_error():
    tables = {"wood": pd.DataFrame({"dataset": ["mit67"]})}
    with pytest.raises(ValueError, match=r"thresholds/wood: the 'dataset' column must be 'wood'"):
        check_dataset_column(tables, "thresholds")
    with pytest.raises(ValueError, match="found no column"):
        check_dataset_column({"wood": pd.DataFrame({"x": [1]})}, "thresholds")
