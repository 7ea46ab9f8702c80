"""Unit tests of the calibration core (cnn_feature_behavior.statistics.calibration) against plain references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import linregress

from cnn_feature_behavior.statistics import calibration as core
from cnn_feature_behavior.statistics import threshold_fit


def test_grids_have_the_paper_step_and_ranges():
    positive, negative = core.threshold_grid("positive"), core.threshold_grid("negative")
    assert positive.size == 1001 and positive[0] == 0 and positive[-1] == 1
    assert negative.size == 1000 and negative[0] == -1 and negative[-1] == -0.001
    np.testing.assert_allclose(np.diff(positive), 0.001)
    assert core.threshold_grid("positive", 0.01).size == 101
    with pytest.raises(ValueError, match="divide 1"):
        core.threshold_grid("positive", 0.3)


def test_permutations_keep_class_sizes_and_repeat_with_the_seed():
    labels = np.repeat(np.arange(5), [3, 10, 1, 7, 20])
    first = core.permuted_labels(labels, 3, seed=42)
    again = core.permuted_labels(labels, 3, seed=42)
    other = core.permuted_labels(labels, 3, seed=43)
    for permuted in first:
        np.testing.assert_array_equal(np.bincount(permuted), np.bincount(labels))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert not np.array_equal(first[0], first[1])
    with pytest.raises(ValueError, match="repetitions"):
        core.permuted_labels(labels, 0, seed=1)


def test_counts_beyond_match_brute_force_on_both_sides():
    rng = np.random.default_rng(0)
    values = np.round(rng.uniform(-1, 1, (40, 6)), 2).astype(np.float32)  # many values on the grid
    for side in core.SIDES:
        x = core.threshold_grid(side, 0.01)
        flat = values.astype(np.float64).ravel()
        beyond = (lambda v, t: v > t) if side == "positive" else (lambda v, t: v < t)
        np.testing.assert_array_equal(
            core.pairs_beyond(values, x, side), [np.sum(beyond(flat, t)) for t in x]
        )
        expected = [
            [np.sum(beyond(values[:, c].astype(np.float64), t)) for t in x] for c in range(6)
        ]
        np.testing.assert_array_equal(core.class_counts_beyond(values, x, side), expected)


def test_davg_is_the_mean_per_class_difference():
    np.testing.assert_allclose(core.davg([10, 6, 0], [4, 6, 2], n_classes=2), [3, 0, -1])


def test_best_threshold_takes_the_maximum_and_the_x_nearest_zero_on_ties():
    x = core.threshold_grid("positive", 0.1)
    assert core.best_threshold(x, np.array([0, 1, 5, 5, 2, 0, 0, 0, 0, 0, 0])) == (0.2, 5.0)
    x = core.threshold_grid("negative", 0.1)  # -1.0 ... -0.1
    assert core.best_threshold(x, np.array([0, 0, 0, 0, 0, 7, 7, 1, 0, 0])) == pytest.approx(
        (-0.4, 7.0)
    )


def test_log_fit_matches_scipy_linregress():
    rng = np.random.default_rng(1)
    means = np.array([50.0, 80.0, 120.0, 400.0, 1000.0])
    thresholds = 0.3 - 0.03 * np.log(means) + rng.normal(0, 0.005, means.size)
    a, b, r_squared = threshold_fit.fit_log_model(means, thresholds)
    reference = linregress(np.log(means), thresholds)
    np.testing.assert_allclose(
        [a, b, r_squared], [reference.intercept, reference.slope, reference.rvalue**2]
    )
    exact = threshold_fit.fit_log_model(means, 0.2 + 0.01 * np.log(means))
    np.testing.assert_allclose(exact, [0.2, 0.01, 1.0])
    assert np.isnan(threshold_fit.fit_log_model(means, np.full(5, 0.1))[2])
    with pytest.raises(ValueError, match="same mean images per class"):
        threshold_fit.fit_log_model(np.array([5.0, 5.0, 5.0]), np.array([0.1, 0.2, 0.3]))
