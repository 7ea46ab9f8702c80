"""Feature selections compared by the transfer evaluation, fitted on the training images only.

The DKS ranking of the features (DKS and the thresholds t+ / t- of the training split, found as
the calibration pipeline finds them on the whole dataset), the curve's sizes, and the baselines
the rankings are compared with: seeded random selections and the ANOVA-F filter
(scikit-learn's `f_classif`, the standard univariate filter). Standardisation and the FNE are
in embeddings.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_selection import f_classif

from cnn_feature_behavior.statistics import calibration
from cnn_feature_behavior.statistics.dks import signed_ks_labellings

RANKINGS = ("dks_count", "dks_mean_abs", "dks_cover")
ANOVA_F = "anova_f"
# The filter baselines of `transfer.baselines` (random is always compared).
BASELINES = (ANOVA_F,)


@dataclass(frozen=True)
class DksRanking:
    """Features ordered from most to least relevant, with what the order was computed from."""

    orders: dict[str, np.ndarray]  # per ranking, feature positions, best first
    dks: np.ndarray  # (features, classes) float32 DKS of the training images
    t_plus: float
    t_minus: float
    classes_passed: np.ndarray  # per feature, classes with DKS > t+ or DKS < t-
    mean_abs_dks: np.ndarray


def training_thresholds(
    dks: np.ndarray, randomised: Sequence[np.ndarray], n_classes: int
) -> tuple[float, float]:
    """t+ and t- maximising davg (Equation 4) over every (feature, class) pair, ties nearest 0.

    dks and each randomised table are (features, classes) values; the randomised pair counts are
    averaged over the tables, as the calibration pipeline averages its repetitions.
    """
    best = []
    for side in calibration.SIDES:
        x = calibration.threshold_grid(side)
        real = calibration.pairs_beyond(dks, x, side)
        shuffled = np.mean([calibration.pairs_beyond(r, x, side) for r in randomised], axis=0)
        best.append(calibration.best_threshold(x, calibration.davg(real, shuffled, n_classes))[0])
    return best[0], best[1]


def dks_ranking(
    train_values: np.ndarray,
    train_labels: np.ndarray,
    class_names: Sequence[str],
    bins: int | None,
    repetitions: int,
    seed: int,
    workers: int | None = None,
    feature_names: Sequence[str] | None = None,
) -> DksRanking:
    """Rank features by DKS on the training images only, in every ranking of RANKINGS.

    dks_count: by the number of classes whose DKS passes t+ or t- (thresholds calibrated on the
    training images with `repetitions` seeded label permutations), ties by mean |DKS| over the
    classes, then by feature position. dks_mean_abs: by mean |DKS|, then feature position.
    dks_cover: classes take turns (class_covering_order).
    """
    labels = np.asarray(train_labels, np.int64)
    missing = np.setdiff1d(np.arange(len(class_names)), labels)
    if missing.size:
        names = [class_names[c] for c in missing[:10]]
        raise ValueError(f"{missing.size} class(es) have no training image: {names}")

    # One pass over the features for the real labels and their permutations; float32, as the
    # dks pipeline stores it and the calibration pipeline counts it.
    labellings = [labels, *calibration.permuted_labels(labels, repetitions, seed)]
    tables = signed_ks_labellings(
        train_values, labellings, class_names, bins=bins, workers=workers,
        feature_names=feature_names,
    ).astype(np.float32)  # fmt: skip
    dks, randomised = tables[0], list(tables[1:])
    t_plus, t_minus = training_thresholds(dks, randomised, len(class_names))
    values = dks.astype(np.float64)
    passed = np.count_nonzero((values > t_plus) | (values < t_minus), axis=1)
    mean_abs = np.abs(values).mean(axis=1)
    position = np.arange(len(values))
    orders = {
        "dks_count": np.lexsort((position, -mean_abs, -passed)),
        "dks_mean_abs": np.lexsort((position, -mean_abs)),
        "dks_cover": class_covering_order(values),
    }
    return DksRanking(orders, dks, t_plus, t_minus, passed, mean_abs)


def class_covering_order(dks: np.ndarray) -> np.ndarray:
    """Classes take turns, each taking its best remaining feature by |DKS| (ties by position).

    Round r gives every class its r-th best feature not taken by an earlier turn, so the first
    k features speak for every class once k reaches the number of classes, where the count
    ranking favours features that speak for many classes and can leave some with none.
    """
    n_features, n_classes = dks.shape
    # Each class's features, best first (stable: ties by feature position).
    preference = np.argsort(-np.abs(dks), axis=0, kind="stable")
    taken = np.zeros(n_features, bool)
    cursor = np.zeros(n_classes, np.intp)
    order = np.empty(n_features, np.intp)
    for step in range(n_features):
        k = step % n_classes
        column = preference[:, k]
        while taken[column[cursor[k]]]:
            cursor[k] += 1
        feature = column[cursor[k]]
        taken[feature] = True
        order[step] = feature
    return order


def curve_sizes(n_features: int, fractions: Sequence[float]) -> list[tuple[float, int]]:
    """(fraction, features kept) for each fraction in (0, 1]: round(fraction * n), at least 1."""
    sizes = []
    for fraction in fractions:
        if not 0 < float(fraction) <= 1:
            raise ValueError(f"transfer.fractions must lie in (0, 1], got {fraction!r}")
        sizes.append((float(fraction), max(1, int(round(float(fraction) * n_features)))))
    return sizes


def random_order(n_features: int, seed: int | Sequence[int]) -> np.ndarray:
    """A seeded permutation of the features; its first k are the random selection of size k."""
    return np.random.default_rng(seed).permutation(n_features)


def anova_f_order(train_values: np.ndarray, train_labels: np.ndarray) -> np.ndarray:
    """The features by decreasing ANOVA F statistic of the training images
    (`sklearn.feature_selection.f_classif`), ties by position; a constant feature (F undefined)
    last. F does not change under a feature's standardisation."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", UserWarning)  # "Features [...] are constant."
        f_values, _ = f_classif(train_values, train_labels)
    f_values = np.where(np.isfinite(f_values), f_values, -np.inf)
    return np.lexsort((np.arange(f_values.size), -f_values))
