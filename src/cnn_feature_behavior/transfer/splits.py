"""Train / test splits of the image index for the transfer evaluation.

The dataset's official split is used where it has one (the index's `split` column, filled by the
ingestion readers) and `use_official` is true. Elsewhere `repetitions` seeded, stratified draws:
in each class, `train_per_class` images for training where set, else `train_fraction` of the class
(rounded half up), and the rest for testing. A class too small for its `train_per_class` quota
(fewer than `train_per_class + 1` images) trains on half of its images (rounded down); every class
keeps at least one training and one test image, so a class of one image cannot be split.

Draw `r` shuffles the images of the class with label `c` (in `image_id` order) with
`numpy.random.default_rng([seed, r, c])`: a draw depends only on the seed, the repetition and
the class's images, not on the index's row order nor on the other classes; unlike
`default_rng(seed + r)`, seed `s`'s draw 1 is not seed `s + 1`'s draw 0.

Within a training split, `stratified_folds` draws the seeded, stratified folds whose held-out
parts choose C.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.transfer.settings import SplitSettings

logger = logging.getLogger(__name__)

SPLIT_COLUMNS = ["repetition", "image_id", "split", "split_source"]
TRAIN, TEST = "train", "test"
OFFICIAL, SEEDED = "official", "seeded"


def transfer_splits(image_index: pd.DataFrame, split_params: Mapping[str, Any]) -> pd.DataFrame:
    """One row per (repetition, image): `repetition`, `image_id`, `split`, `split_source`.

    Official (one repetition, 0) when `use_official` and every indexed image has a split;
    otherwise `repetitions` seeded stratified draws (module docstring). Rows follow the index's
    order within each repetition.
    """
    params = SplitSettings.from_params(split_params)
    _check_index(image_index)
    official = image_index["split"] if "split" in image_index.columns else None
    if params.use_official and official is not None and official.notna().all():
        _check_official_sides(image_index)
        logger.info(
            "transfer splits: the official split, %d train and %d test images",
            int((official == TRAIN).sum()),
            int((official == TEST).sum()),
        )
        return pd.DataFrame(
            {
                "repetition": np.zeros(len(image_index), dtype=np.int64),
                "image_id": image_index["image_id"].to_numpy(),
                "split": official.to_numpy(dtype=object),
                "split_source": OFFICIAL,
            },
            columns=SPLIT_COLUMNS,
        )
    if params.use_official:
        n_missing = len(image_index) if official is None else int(official.isna().sum())
        if n_missing < len(image_index):
            logger.warning(
                "transfer splits: %d of the %d indexed images have no official split; seeded "
                "splits for all of them",
                n_missing,
                len(image_index),
            )
        else:
            logger.info("transfer splits: no official split for this dataset; seeded splits")
    return seeded_splits(image_index, params)


def seeded_splits(image_index: pd.DataFrame, params: SplitSettings) -> pd.DataFrame:
    """`repetitions` seeded, stratified train/test draws of the index (module docstring)."""
    classes = _class_members(image_index)
    quotas = {label: train_quota(len(rows), params) for label, (_, rows) in classes.items()}
    small = [
        f"{name} ({len(rows)})"
        for label, (name, rows) in classes.items()
        if params.train_per_class is not None and len(rows) < params.train_per_class + 1
    ]
    if small:
        logger.warning(
            "transfer splits: %d classes have too few images for train_per_class=%d and train "
            "on half of them: %s",
            len(small),
            params.train_per_class,
            ", ".join(small[:10]),
        )
    frames = []
    for repetition in range(params.repetitions):
        split = np.full(len(image_index), TEST, dtype=object)
        for label, (_, rows) in classes.items():
            rng = np.random.default_rng([params.seed, repetition, label])
            split[rows[rng.permutation(len(rows))[: quotas[label]]]] = TRAIN
        frames.append(
            pd.DataFrame(
                {
                    "repetition": np.full(len(image_index), repetition, dtype=np.int64),
                    "image_id": image_index["image_id"].to_numpy(),
                    "split": split,
                    "split_source": SEEDED,
                },
                columns=SPLIT_COLUMNS,
            )
        )
    logger.info(
        "transfer splits: %d seeded draws (seed %d), %d train and %d test images each",
        params.repetitions,
        params.seed,
        sum(quotas.values()),
        len(image_index) - sum(quotas.values()),
    )
    return pd.concat(frames, ignore_index=True)


def train_quota(n_images: int, params: SplitSettings) -> int:
    """Training images of a class of `n_images` (at least 1 train and 1 test image)."""
    per_class = params.train_per_class
    if per_class is not None:
        quota = per_class if n_images >= per_class + 1 else n_images // 2
    else:
        quota = half_up(params.train_fraction, n_images)
    return min(max(quota, 1), n_images - 1)


def half_up(fraction: float, n: int) -> int:
    """fraction x n rounded half up in exact decimal arithmetic (0.35 x 90 = 31.5 gives 32; in
    floating point it is 31.499999999999996)."""
    exact = Fraction(str(float(fraction))) * int(n) + Fraction(1, 2)
    return exact.numerator // exact.denominator


def _check_index(image_index: pd.DataFrame) -> None:
    missing = [c for c in ("image_id", "label", "class_name") if c not in image_index.columns]
    if missing:
        raise ValueError(f"image_index lacks column(s) {missing}; has {list(image_index.columns)}")
    duplicated = image_index["image_id"][image_index["image_id"].duplicated()]
    if len(duplicated):
        raise ValueError(
            f"image_index has {len(duplicated)} duplicated image_id(s): {duplicated.head(5).tolist()}"
        )
    if "split" in image_index.columns:
        values = image_index["split"]
        odd = sorted(set(values[values.notna()]) - {TRAIN, TEST})
        if odd:
            raise ValueError(f"image_index split column holds {odd}; expected train, test or null")


def _class_members(image_index: pd.DataFrame) -> dict[int, tuple[str, np.ndarray]]:
    """{label: (class_name, row positions in image_id order)}; a class of one image is an error."""
    members = {}
    order = np.lexsort((image_index["image_id"].astype(str).to_numpy(), image_index["label"]))
    labels = image_index["label"].to_numpy()[order]
    names = image_index["class_name"].to_numpy()[order]
    for label in np.unique(labels):
        rows = order[labels == label]
        name = str(names[labels == label][0])
        if len(rows) < 2:
            raise ValueError(
                f"class {name} (label {label}) has {len(rows)} image: a train/test split needs at "
                "least 2 (one to train on, one to test)"
            )
        members[int(label)] = (name, rows)
    return members


def _check_official_sides(image_index: pd.DataFrame) -> None:
    """A class without training images in the official split is an error (it could not be
    learnt, and would fail later); one without test images only goes unmeasured: a warning."""
    sides = image_index.groupby("class_name", sort=False)["split"].agg(lambda s: set(s))
    untrained = [str(name) for name, s in sides.items() if TRAIN not in s]
    if untrained:
        raise ValueError(
            f"transfer splits: the official split (image_index `split` column) leaves "
            f"{len(untrained)} class(es) without any training image: {', '.join(untrained[:20])}"
            "; set transfer.split.use_official: false for seeded splits"
        )
    untested = [f"{name} (train only)" for name, s in sides.items() if TEST not in s]
    if untested:
        logger.warning(
            "transfer splits: %d classes have no test image in the official split: %s",
            len(untested),
            ", ".join(untested[:10]),
        )


def stratified_folds(
    labels: np.ndarray, n_folds: int, seed: int | Sequence[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified k-fold (training part, held-out part) positions of a training split.

    Each class's images, shuffled with `numpy.random.default_rng(seed)`, are dealt to the folds
    in turn, starting where the previous class's stopped, so every fold holds floor or ceil of
    n_c / k of a class and the folds' sizes differ by one image at most. A class of one image is
    held out by no fold (its fold would have nothing to learn it from); a class of two or more
    keeps an image in every training part. Every image of the other classes is held out once.
    """
    labels = np.asarray(labels)
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"transfer.c_selection.folds must be an integer >= 2, got {n_folds!r}")
    rng = np.random.default_rng(seed)
    fold_of = np.full(labels.size, -1)
    next_fold = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if members.size < 2:
            continue
        fold_of[members] = (next_fold + np.arange(members.size)) % n_folds
        next_fold = (next_fold + members.size) % n_folds
    positions = np.arange(labels.size)
    return [(positions[fold_of != k], positions[fold_of == k]) for k in range(int(n_folds))]


def training_masks(image_ids: Sequence[str], splits: pd.DataFrame) -> dict[int, np.ndarray]:
    """Per repetition of `transfer_splits` (columns repetition, image_id, split), whether each
    embedded image (`image_ids`, in embedding order) trains in it. An embedded image without a
    split is an error; a split image without an embedding row was rejected at extraction."""
    missing = {"repetition", "image_id", "split"} - set(splits.columns)
    if missing:
        raise ValueError(f"transfer_splits lacks column(s) {sorted(missing)}")
    ids = pd.Index(np.asarray(image_ids).astype(str))
    masks = {}
    for repetition, split in splits.groupby("repetition", sort=True):
        membership = split.set_index(split["image_id"].astype(str))["split"].reindex(ids)
        if membership.isna().any():
            unsplit = ids[membership.isna().to_numpy()]
            raise ValueError(
                f"transfer_splits repetition {repetition}: {len(unsplit)} embedded image(s) "
                f"have no split, e.g. {unsplit[:5].tolist()}: run the transfer pipeline again"
            )
        masks[int(repetition)] = (membership == TRAIN).to_numpy()
    if not masks:
        raise ValueError("transfer_splits has no rows")
    return masks
