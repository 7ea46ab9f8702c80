"""The transfer splits: the official split where complete, else seeded stratified draws."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from cnn_feature_behavior.transfer.splits import SPLIT_COLUMNS, transfer_splits

SEEDED = {"use_official": True, "train_per_class": None, "repetitions": 3, "seed": 2018}


def index_of(sizes: list[int], split: list | None = None) -> pd.DataFrame:
    rows = [
        (f"c{label}/{i:03d}", label, f"class {label}")
        for label, n in enumerate(sizes)
        for i in range(n)
    ]
    index = pd.DataFrame(rows, columns=["image_id", "label", "class_name"])
    index["split"] = split if split is not None else None
    return index


def train_counts(splits: pd.DataFrame, index: pd.DataFrame) -> dict[int, list[int]]:
    """{repetition: training images per label}, by a plain loop."""
    label_of = dict(zip(index["image_id"], index["label"]))
    counts: dict[int, list[int]] = {}
    for row in splits.itertuples():
        per_label = counts.setdefault(row.repetition, [0] * index["label"].nunique())
        per_label[label_of[row.image_id]] += row.split == "train"
    return counts


def test_official_split_used_when_every_image_has_one():
    index = index_of([2, 3], ["train", "test", "test", "train", "test"])
    splits = transfer_splits(index, SEEDED)
    assert list(splits.columns) == SPLIT_COLUMNS
    assert splits["repetition"].tolist() == [0] * 5
    assert splits["image_id"].tolist() == index["image_id"].tolist()
    assert splits["split"].tolist() == index["split"].tolist()
    assert set(splits["split_source"]) == {"official"}


@pytest.mark.parametrize(
    ("split", "use_official"),
    [
        (["train", "test", None, "train", "test"], True),
        (None, True),
        (["train", "test"] * 2 + ["test"], False),
    ],
)
def test_seeded_when_the_official_split_is_incomplete_or_not_wanted(split, use_official):
    index = index_of([2, 3], split)
    splits = transfer_splits(index, SEEDED | {"use_official": use_official})
    assert set(splits["split_source"]) == {"seeded"}
    assert sorted(set(splits["repetition"])) == [0, 1, 2]
    for _, draw in splits.groupby("repetition"):
        assert draw["image_id"].tolist() == index["image_id"].tolist()


def test_index_without_split_column_is_seeded():
    index = index_of([4, 4]).drop(columns="split")
    assert set(transfer_splits(index, SEEDED)["split_source"]) == {"seeded"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # 30 per class; a class with fewer than 31 images trains on half (floor, at least 1).
        ({"train_per_class": 30}, [1, 1, 5, 15, 30, 30]),
        ({"train_per_class": 1}, [1, 1, 1, 1, 1, 1]),
        # A fraction, rounded half up, at least 1 train and 1 test image.
        ({"train_fraction": 0.5}, [1, 2, 5, 15, 16, 20]),
        ({"train_fraction": 0.9}, [1, 2, 9, 27, 28, 36]),
        ({"train_fraction": 0.05}, [1, 1, 1, 2, 2, 2]),
    ],
)
def test_seeded_draws_are_stratified_by_the_rules(params, expected):
    index = index_of([2, 3, 10, 30, 31, 40])
    splits = transfer_splits(index, SEEDED | params)
    assert train_counts(splits, index) == {r: expected for r in range(3)}


def test_seeded_draws_are_deterministic_and_differ_across_repetitions_and_seeds():
    index = index_of([20, 25, 30])
    first = transfer_splits(index, SEEDED)
    pd.testing.assert_frame_equal(first, transfer_splits(index, SEEDED))
    draws = [d["split"].tolist() for _, d in first.groupby("repetition")]
    assert draws[0] != draws[1] and draws[1] != draws[2] and draws[0] != draws[2]
    other_seed = transfer_splits(index, SEEDED | {"seed": 2019})
    assert other_seed["split"].tolist() != first["split"].tolist()
    # Not seed + repetition: seed 2018's draw 1 is not seed 2019's draw 0.
    assert draws[1] != other_seed.loc[other_seed["repetition"] == 0, "split"].tolist()
    # The row order of the index changes the row order only, not any image's split.
    shuffled = index.sample(frac=1, random_state=0).reset_index(drop=True)
    again = transfer_splits(shuffled, SEEDED)
    key = ["repetition", "image_id"]
    pd.testing.assert_frame_equal(
        first.sort_values(key, ignore_index=True), again.sort_values(key, ignore_index=True)
    )


def test_a_class_of_one_image_cannot_be_split():
    index = index_of([3, 1, 2])
    with pytest.raises(ValueError, match=r"class class 1 \(label 1\) has 1 image"):
        transfer_splits(index, SEEDED)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"train_per_class": 0}, "transfer.split.train_per_class must be an integer of at least 1"),
        ({"train_per_class": 2.5}, "train_per_class must be an integer"),
        (
            {"train_fraction": 1.0},
            r"transfer.split.train_fraction must be a number between 0 and 1",
        ),
        ({"train_fraction": "half"}, "train_fraction must be a number"),
        ({"repetitions": 0}, r"transfer.split.repetitions must be an integer of at least 1, got 0"),
        ({"seed": -1}, "transfer.split.seed must be an integer of at least 0, got -1"),
        ({"use_official": "yes"}, "transfer.split.use_official must be true or false, got 'yes'"),
        ({"train_size": 30}, r"transfer.split has unknown keys \['train_size'\]"),
    ],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        transfer_splits(index_of([4, 4]), SEEDED | params)


def test_bad_split_values_and_duplicate_ids_are_errors():
    with pytest.raises(ValueError, match=r"split column holds \['val'\]"):
        transfer_splits(index_of([2, 2], ["train", "val", "train", "test"]), SEEDED)
    index = index_of([2, 2])
    index.loc[1, "image_id"] = index.loc[0, "image_id"]
    with pytest.raises(ValueError, match="duplicated image_id"):
        transfer_splits(index, SEEDED)


def test_defaults_fill_absent_keys():
    splits = transfer_splits(index_of([4, 6]), {})
    assert sorted(set(splits["repetition"])) == [0, 1, 2]
    assert train_counts(splits, index_of([4, 6]))[0] == [2, 3]
    assert np.all(splits.groupby("repetition").size() == 10)


def test_env_split_blocks_merge_into_the_base_block(project_root):
    from kedro.config import OmegaConfigLoader

    from cnn_feature_behavior.settings import CONFIG_LOADER_ARGS
    from cnn_feature_behavior.transfer.settings import SplitSettings

    DEFAULT_SPLIT_PARAMS = asdict(SplitSettings())

    def split_block(env):
        loader = OmegaConfigLoader(str(project_root / "conf"), **CONFIG_LOADER_ARGS, env=env)
        return loader["parameters"]["transfer"]["split"]

    assert split_block("flowers102") == DEFAULT_SPLIT_PARAMS
    assert split_block("caltech101") == DEFAULT_SPLIT_PARAMS | {"train_per_class": 30}
    assert split_block("caltech256") == DEFAULT_SPLIT_PARAMS | {"train_per_class": 60}


def test_official_split_leaving_a_class_without_training_images_is_an_error_naming_it():
    # class 1 (3 images) has test images only: it could never be learnt.
    index = index_of([2, 3, 2], ["train", "test", "test", "test", "test", "train", "test"])
    with pytest.raises(ValueError, match=r"without any training image: class 1;"):
        transfer_splits(index, SEEDED)


def test_class_with_training_images_only_in_the_official_split_is_allowed_with_a_warning(caplog):
    index = index_of([2, 2], ["train", "test", "train", "train"])
    splits = transfer_splits(index, SEEDED)
    assert set(splits["split_source"]) == {"official"}
    assert "class 1 (train only)" in caplog.text


def test_train_fraction_rounds_half_up_exactly():
    from cnn_feature_behavior.transfer.settings import SplitSettings
    from cnn_feature_behavior.transfer.splits import train_quota

    # 0.35 x 90 = 31.5 exactly; in floating point 31.499999999999996, which rounded to 31.
    params = SplitSettings(train_per_class=None, train_fraction=0.35)
    assert train_quota(90, params) == 32
    assert train_quota(10, SplitSettings(train_per_class=None, train_fraction=0.25)) == 3  # 2.5 up
