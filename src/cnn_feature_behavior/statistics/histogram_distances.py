"""Kullback-Leibler divergence and Bhattacharyya distance between inner and outer class histograms.

Section 4 of the paper: for feature f and class c, P is the histogram of f over the images of c
(inner) and Q over all other images (outer), on the same bins as the binned DKS (`dks.bin_indices`:
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

from cnn_feature_behavior.statistics.dks import (
    bin_indices,
    class_histogram,
    class_sizes,
    map_feature_blocks,
)

DEFAULT_SMOOTHING = 1e-4


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
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(
            f"histogram distances need a positive integer number of bins, got {bins!r}"
        )
    if not smoothing > 0:
        raise ValueError(
            f"smoothing must be > 0 to keep KL finite on empty bins, got {smoothing!r}"
        )
    bins = int(bins)
    label_offsets = labels.astype(np.intp) * bins
    # Divisions, not reciprocal products: equal fractions must give bit-identical probabilities.
    inner_sizes = sizes[:, None].astype(np.float64)
    outer_sizes = (n_images - sizes)[:, None].astype(np.float64)
    renorm = 1.0 / (1.0 + bins * smoothing)

    def work(block_t, lo, hi, outs):
        kl_out, bhattacharyya_out = outs
        for f, bin_row in enumerate(bin_indices(block_t, lo, hi, bins)):
            inner = class_histogram(bin_row, label_offsets, n_classes, bins)
            outer = inner.sum(axis=0) - inner
            p = inner / inner_sizes
            p += smoothing
            p *= renorm
            q = outer / outer_sizes
            q += smoothing
            q *= renorm
            log_ratio = np.log(p)
            log_ratio -= np.log(q)
            kl_out[f] = np.einsum("cb,cb->c", p, log_ratio)
            p *= q
            np.sqrt(p, out=p)
            bhattacharyya_out[f] = -np.log(p.sum(axis=1))
        # Both are >= 0; rounding could otherwise leave values like -1e-17.
        np.maximum(kl_out, 0.0, out=kl_out)
        np.maximum(bhattacharyya_out, 0.0, out=bhattacharyya_out)

    return map_feature_blocks(values, work, n_classes, 2, workers, feature_names)
