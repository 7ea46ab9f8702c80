"""Signed Kolmogorov-Smirnov statistic (DKS) between each class and the rest of a dataset.

For feature f and class c, inner = the values of f over the images of c, outer = its values
over every other image. With EDF(x) the fraction of a sample <= x (right-continuous),

    DKS(f, c) = outer_EDF(x*) - inner_EDF(x*),  x* = argmax_x |outer_EDF(x) - inner_EDF(x)|,

so DKS > 0 when the class tends to have higher values than the rest. With n = |inner| and
N = |inner| + |outer|, outer_EDF - inner_EDF = (n * T(x) - N * I(x)) / (n * (N - n)) where T and I
count all and inner values <= x, so the statistic is found on exact integer scores.

Tie rule: when the largest positive and the largest negative difference have the same magnitude,
DKS takes the negative sign (the inner EDF is ahead). This is the choice scipy.stats.ks_2samp
makes (its `statistic_sign` is +1 on ties with the inner sample first). A constant feature, or any
pair with identical inner and outer distributions, gives exactly 0.

Modes:
- binned (`bins` an int, the paper's 100): each feature's values are binned into `bins`
  equal-width bins over [min, max] of that feature over the whole dataset; the bin of x is
  floor((x - min) * (bins / (max - min))) computed in float64, the maximum falls in the last bin
  and a constant feature sits in bin 0. The EDFs are evaluated at the bin edges, which is the exact
  statistic of the bin indices.
- exact (`bins=None`): no discretisation; the EDFs are compared at every observed value, as
  scipy.stats.ks_2samp does.

Features are processed in blocks on a thread pool by compiled kernels (dks_kernels.py, numba,
GIL released), so peak memory is a few blocks of the input plus the (features x classes) result.
Several labellings (real and randomised) are served from one pass (`signed_ks_labellings`): the
binning or the value order of a feature is computed once for all of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cnn_feature_behavior.statistics import dks_kernels as kernels

logger = logging.getLogger(__name__)

BLOCK_FEATURES = 32

# Per-layer summaries share one binning of DKS values: 100 bins over [-1, 1].
SUMMARY_EDGES = np.linspace(-1.0, 1.0, 101)
# Figure 5's bars: "two error bars enclosing 68% of accumulated probability on each side
# (equivalent to mu +- sigma for normal distribution)". Both readings give mu +- sigma for a
# normal distribution; they part on the skewed DKS distributions (docs/data_contracts.md).
INTERVAL_MASS = 0.68
# `central_68`: 34% of the side's values on each side of the mode's cumulative fraction.
HALF_INTERVAL = INTERVAL_MASS / 2
INTERVAL_RULES = ("side_68", "central_68")

BlockWork = Callable[[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]], None]


def class_sizes(labels: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Images per class (int64); error naming any class with no images or with all of them."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    n_classes = len(class_names)
    if n_classes < 2:
        raise ValueError(f"DKS needs at least 2 classes, got {n_classes}: {list(class_names)}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = sorted(set(labels[(labels < 0) | (labels >= n_classes)].tolist()))
        raise ValueError(f"labels outside 0..{n_classes - 1}: {bad[:10]}")
    sizes = np.bincount(labels, minlength=n_classes).astype(np.int64)
    full = [class_names[c] for c in np.flatnonzero(sizes == labels.size)]
    if full:
        raise ValueError(
            f"class {full[0]!r} holds all {labels.size} images: there is no outer sample to compare"
        )
    empty = [class_names[c] for c in np.flatnonzero(sizes == 0)]
    if empty:
        raise ValueError(f"{len(empty)} class(es) have no images, DKS is undefined: {empty[:20]}")
    return sizes


def feature_range(block_t: np.ndarray, first_feature: int, feature_names: Sequence[str] | None):
    """Min and max of each row of a (features, images) block, as float64; error on non-finite."""
    lo = block_t.min(axis=1).astype(np.float64)
    hi = block_t.max(axis=1).astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi)))
    if bad.size:
        columns = [first_feature + int(i) for i in bad]
        names = [feature_names[i] for i in columns] if feature_names is not None else columns
        raise ValueError(f"non-finite values (NaN or inf) in {len(names)} feature(s): {names[:10]}")
    return lo, hi


def bin_indices(block_t: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of every value of a (features, images) block, per row's [lo, hi] (see module doc)."""
    span = hi - lo
    scale = np.divide(float(bins), span, out=np.zeros_like(span), where=span > 0)
    scaled = block_t - lo[:, None]  # float64: the subtraction is exact for float32 inputs
    scaled *= scale[:, None]
    # Truncation is floor here: x >= lo, so every scaled value is >= 0.
    index = scaled.astype(np.int16 if bins <= np.iinfo(np.int16).max else np.int32)
    np.minimum(index, bins - 1, out=index)
    return index


def map_feature_blocks(
    values: np.ndarray,
    work: BlockWork,
    n_columns: int,
    n_outputs: int = 1,
    workers: int | None = None,
    feature_names: Sequence[str] | None = None,
    block_features: int = BLOCK_FEATURES,
) -> tuple[np.ndarray, ...]:
    """Run work(block_t, lo, hi, outs) over blocks of features of an (images, features) matrix.

    block_t is the block as a contiguous (features, images) array, lo/hi its rows' ranges, outs
    the matching rows of each float64 (features, n_columns) output, which work fills in.
    """
    if values.ndim != 2:
        raise ValueError(f"expected an (images, features) matrix, got shape {values.shape}")
    n_features = values.shape[1]
    outputs = tuple(np.empty((n_features, n_columns), np.float64) for _ in range(n_outputs))

    def run_block(start: int) -> int:
        stop = min(start + block_features, n_features)
        block_t = np.ascontiguousarray(values[:, start:stop].T)
        lo, hi = feature_range(block_t, start, feature_names)
        work(block_t, lo, hi, tuple(out[start:stop] for out in outputs))
        return int(np.count_nonzero(lo == hi))

    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # sum() consumes every block and re-raises the first error of any.
        constant = sum(pool.map(run_block, range(0, n_features, block_features)))
    if constant:
        logger.info(
            "%d of %d features are constant over the images (all classes alike)",
            constant,
            n_features,
        )
    return outputs


def check_labellings(
    label_sets: np.ndarray | Sequence[np.ndarray], class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(labellings, images) int32 labels and the class sizes (int64) all of them share.

    The first labelling is checked as `class_sizes` does; every other one must be a relabelling
    with the same class sizes (a permutation of the first, as the randomised repetitions are).
    """
    label_sets = [np.asarray(labels) for labels in label_sets]
    if not label_sets:
        raise ValueError("no labelling given")
    sizes = class_sizes(label_sets[0], class_names)
    for k, labels in enumerate(label_sets[1:], start=1):
        if labels.shape != label_sets[0].shape or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labelling {k} is {labels.dtype}{labels.shape}, expected like labelling 0: "
                f"{label_sets[0].dtype}{label_sets[0].shape}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise ValueError(f"labelling {k} has labels outside 0..{len(class_names) - 1}")
        if not np.array_equal(np.bincount(labels, minlength=len(class_names)), sizes):
            raise ValueError(f"labelling {k} does not keep the class sizes of labelling 0")
    return np.ascontiguousarray(np.stack(label_sets), dtype=np.int32), sizes


def check_bins(bins: int | None) -> int | None:
    """bins as an int (binned mode) or None (exact mode); error on anything else."""
    if bins is None:
        return None
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer or null (exact), got {bins!r}")
    return int(bins)


def block_dks(
    block_t: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    label_sets: np.ndarray,
    sizes: np.ndarray,
    bins: int | None,
) -> np.ndarray:
    """DKS of a contiguous (features, images) float32 block for each labelling: (L, features, C).

    label_sets and sizes as `check_labellings` returns them; lo and hi as `feature_range`.
    """
    out = np.empty((label_sets.shape[0], block_t.shape[0], sizes.size), np.float64)
    if bins is None:
        kernels.exact_block(block_t, label_sets, sizes, out)
    else:
        kernels.binned_block(block_t, lo, hi, label_sets, sizes, bins, out)
    return out


def signed_ks_labellings(
    values: np.ndarray,
    label_sets: np.ndarray | Sequence[np.ndarray],
    class_names: Sequence[str],
    bins: int | None = 100,
    workers: int | None = None,
    feature_names: Sequence[str] | None = None,
) -> np.ndarray:
    """DKS of every (feature, class) pair under each labelling: (labellings, features, classes).

    One pass over the features serves every labelling (the real labels and their permutations):
    a feature's binning or value order is computed once. Equal to signed_ks per labelling.
    """
    label_sets, sizes = check_labellings(label_sets, class_names)
    if values.shape[0] != label_sets.shape[1]:
        raise ValueError(f"{values.shape[0]} rows of values but {label_sets.shape[1]} labels")
    bins = check_bins(bins)
    n_labellings = label_sets.shape[0]

    def work(block_t, lo, hi, outs):
        result = block_dks(block_t, lo, hi, label_sets, sizes, bins)
        for labelling, out in enumerate(outs):
            out[:] = result[labelling]

    outputs = map_feature_blocks(
        np.asarray(values, np.float32),
        work,
        sizes.size,
        n_labellings,
        workers,
        feature_names,
    )
    return np.stack(outputs)


def signed_ks(
    values: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    bins: int | None = 100,
    workers: int | None = None,
    feature_names: Sequence[str] | None = None,
) -> np.ndarray:
    """DKS of every (feature, class) pair: (features, classes) float64 in [-1, 1].

    values: (images, features) float32 matrix, the embedding's type (other types are converted
    to float32 first); labels: (images,) ints in 0..len(class_names)-1.
    bins: equal-width bins per feature (binned mode) or None (exact mode).
    """
    labels = np.asarray(labels)
    class_sizes(labels, class_names)
    if values.shape[0] != labels.size:
        raise ValueError(f"{values.shape[0]} rows of values but {labels.size} labels")
    return signed_ks_labellings(values, [labels], class_names, bins, workers, feature_names)[0]


def side_summary(
    values: np.ndarray, side: str, interval: str = "side_68"
) -> tuple[float, float, float, int]:
    """Mode and 68% bars of one side of a set of DKS values (the paper's Figure 5).

    side 'positive' keeps values > 0, 'negative' values < 0 (zeros belong to neither). The mode is
    the centre of the fullest SUMMARY_EDGES bin on that side (the one nearest 0 on ties). With
    interval 'side_68', low is the INTERVAL_MASS quantile, counted from the mode outwards, of the
    side's values below the mode (so that 68% of them lie in [low, mode]) and high likewise of the
    values above it; a bar with no value beyond the mode is the mode itself. With 'central_68',
    low and high are the quantiles HALF_INTERVAL below and above the fraction of values <= mode,
    clipped to the side's extremes. Quantiles interpolate linearly (numpy's default). Returns
    (mode, low, high, n_values), NaNs when the side is empty.
    """
    if interval not in INTERVAL_RULES:
        raise ValueError(f"interval must be one of {INTERVAL_RULES}, got {interval!r}")
    values = np.asarray(values, np.float64).ravel()
    if side == "positive":
        kept = values[values > 0]
    elif side == "negative":
        kept = values[values < 0]
    else:
        raise ValueError(f"side must be 'positive' or 'negative', got {side!r}")
    if kept.size == 0:
        return np.nan, np.nan, np.nan, 0
    counts, edges = np.histogram(kept, bins=SUMMARY_EDGES)
    # The side's bins, ordered from 0 outwards so that argmax picks the bin nearest 0 on ties.
    half = len(counts) // 2
    outward = counts[half:] if side == "positive" else counts[:half][::-1]
    offset = int(np.argmax(outward))
    fullest = half + offset if side == "positive" else half - 1 - offset
    mode = float((edges[fullest] + edges[fullest + 1]) / 2)
    if interval == "side_68":
        below, above = kept[kept < mode], kept[kept > mode]
        low = np.quantile(below, 1.0 - INTERVAL_MASS) if below.size else mode
        high = np.quantile(above, INTERVAL_MASS) if above.size else mode
    else:
        at_mode = float(np.mean(kept <= mode))
        low, high = np.quantile(
            kept, [max(at_mode - HALF_INTERVAL, 0.0), min(at_mode + HALF_INTERVAL, 1.0)]
        )
    return mode, float(low), float(high), int(kept.size)


def percent_histogram(values: np.ndarray) -> np.ndarray:
    """Percent of values in each SUMMARY_EDGES bin (100 bins over [-1, 1], the last closed)."""
    values = np.asarray(values, np.float64).ravel()
    counts, _ = np.histogram(values, bins=SUMMARY_EDGES)
    if values.size == 0:
        return counts.astype(np.float64)
    return 100.0 * counts / values.size
