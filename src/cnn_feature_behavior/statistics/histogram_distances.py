"""Kullback-Leibler divergence and Bhattacharyya distance between inner and outer class histograms.

Section 4 of the paper: for feature f and class c, P is the histogram of f over the images of c
(inner) and Q over all other images (outer), on the same bins as the binned DKS (`dks.bin_indices`,
equal-width bins over the feature's range over the whole dataset).

    KL(P || Q) = sum_i P(i) ln(P(i) / Q(i)),    Bhattacharyya(P, Q) = -ln sum_i sqrt(P(i) Q(i)).

Smoothing for empty bins: each histogram is normalised to probabilities, then `smoothing` (eps) is
added to every bin and the result renormalised, P(i) = (h(i) / n + eps) / (1 + bins * eps). Empty
bins thus get a probability eps / (1 + bins * eps) and KL stays finite, while identical inner and
outer histograms still give exactly 0 (also for a constant feature). Both measures are clipped at
0, which rounding could otherwise undercut by ~1e-16.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnn_feature_behavior.statistics import dks_kernels as kernels
from cnn_feature_behavior.statistics.dks import class_sizes, map_feature_blocks

DEFAULT_SMOOTHING = 1e-4


def check_histogram_settings(bins: int, smoothing: float) -> None:
    """Error naming the setting unless bins is a positive int and smoothing > 0."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(
            f"histogram distances need a positive integer number of bins, got {bins!r}"
        )
    if not smoothing > 0:
        raise ValueError(
            f"smoothing must be > 0 to keep KL finite on empty bins, got {smoothing!r}"
        )


def block_histogram_distances(
    block_t: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    labels: np.ndarray,
    sizes: np.ndarray,
    bins: int,
    smoothing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """KL and Bhattacharyya of a contiguous (features, images) float32 block: two (features, C).

    labels: int32 (images,); sizes: int64 class sizes; lo, hi: each row's range (float64).
    """
    kl = np.empty((block_t.shape[0], sizes.size), np.float64)
    bhattacharyya = np.empty_like(kl)
    kernels.histogram_distance_block(
        block_t, lo, hi, labels, sizes, int(bins), float(smoothing), kl, bhattacharyya
    )
    return kl, bhattacharyya


def histogram_distances(
    values: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    bins: int = 100,
    smoothing: float = DEFAULT_SMOOTHING,
    workers: int | None = None,
    feature_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """KL(inner || outer) and Bhattacharyya distance of every (feature, class): two float64 arrays.

    values: (images, features); labels: (images,) ints in 0..len(class_names)-1.
    """
    sizes = class_sizes(labels, class_names)
    n_images, n_classes = labels.size, sizes.size
    if values.shape[0] != n_images:
        raise ValueError(f"{values.shape[0]} rows of values but {n_images} labels")
    check_histogram_settings(bins, smoothing)
    bins = int(bins)
    labels = np.ascontiguousarray(labels, dtype=np.int32)

    def work(block_t, lo, hi, outs):
        kl_out, bhattacharyya_out = outs
        kl, bhattacharyya = block_histogram_distances(
            block_t, lo, hi, labels, sizes, bins, smoothing
        )
        kl_out[:] = kl
        bhattacharyya_out[:] = bhattacharyya

    return map_feature_blocks(values, work, n_classes, 2, workers, feature_names)
