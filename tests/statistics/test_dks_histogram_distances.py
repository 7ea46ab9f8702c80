"""KL divergence and Bhattacharyya distance (cnn_feature_behavior.statistics.histogram_distances)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy

from cnn_feature_behavior.statistics.histogram_distances import histogram_distances


def reference(values, labels, n_classes, bins, smoothing):
    """Loop over pairs: histograms by counting, smoothing by hand, KL by scipy.stats.entropy."""
    kl = np.zeros((values.shape[1], n_classes))
    bhattacharyya = np.zeros_like(kl)
    for f in range(values.shape[1]):
        column = [float(v) for v in values[:, f]]
        lo, hi = min(column), max(column)
        scale = bins / (hi - lo) if hi > lo else 0.0
        bin_of = [min(math.floor((v - lo) * scale), bins - 1) for v in column]
        for c in range(n_classes):
            inner = np.zeros(bins)
            outer = np.zeros(bins)
            for b, label in zip(bin_of, labels):
                (inner if label == c else outer)[b] += 1
            p = (inner / inner.sum() + smoothing) / (1 + bins * smoothing)
            q = (outer / outer.sum() + smoothing) / (1 + bins * smoothing)
            kl[f, c] = entropy(p, q)
            bhattacharyya[f, c] = -math.log(sum(math.sqrt(a * b) for a, b in zip(p, q)))
    return kl, bhattacharyya


@pytest.mark.parametrize(("bins", "smoothing"), [(100, 1e-4), (7, 0.01)])
def test_matches_a_per_pair_reference(bins, smoothing):
    rng = np.random.default_rng(bins)
    labels = rng.permutation(np.repeat(np.arange(4), [1, 5, 20, 60]))
    values = rng.standard_normal((labels.size, 6)).astype(np.float32)
    values[:, 3] = rng.integers(0, 3, labels.size)
    values[:, 4] += 2 * (labels == 2)
    kl, bhattacharyya = histogram_distances(
        values, labels, list("abcd"), bins=bins, smoothing=smoothing
    )
    expected_kl, expected_bhattacharyya = reference(values, labels, 4, bins, smoothing)
    np.testing.assert_allclose(kl, expected_kl, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bhattacharyya, expected_bhattacharyya, rtol=1e-10, atol=1e-12)
    assert kl[4, 2] > kl[[0, 1, 2, 5], 2].max()  # the shifted feature of class c


def test_identical_histograms_and_constant_features_give_zero():
    labels = np.array([0, 0, 1, 1, 1, 1])
    values = np.array([[1, 2, 1, 2, 1, 2], [5, 5, 5, 5, 5, 5]], np.float32).T
    kl, bhattacharyya = histogram_distances(values, labels, ["a", "b"])
    assert np.all(kl == 0) and np.all(bhattacharyya == 0)


def test_disjoint_histograms_stay_finite():
    labels = np.array([0, 0, 1, 1])
    values = np.array([[0, 0, 1, 1]], np.float32).T
    kl, bhattacharyya = histogram_distances(values, labels, ["a", "b"], bins=2, smoothing=1e-4)
    assert np.all(np.isfinite(kl)) and np.all(kl > 5) and np.all(np.isfinite(bhattacharyya))


def test_bad_parameters_are_errors():
    labels = np.array([0, 1])
    values = np.ones((2, 1), np.float32)
    with pytest.raises(ValueError, match="smoothing"):
        histogram_distances(values, labels, ["a", "b"], smoothing=0)
    with pytest.raises(ValueError, match="bins"):
        histogram_distances(values, labels, ["a", "b"], bins=None)
