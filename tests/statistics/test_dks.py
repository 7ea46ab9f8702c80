"""Unit tests of the DKS core (cnn_feature_behavior.statistics.dks) against independent references."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import ks_2samp

from cnn_feature_behavior.statistics import dks


def names(n_classes: int) -> list[str]:
    return [f"class{c}" for c in range(n_classes)]


def random_case(rng: np.random.Generator, kind: str):
    """(values, labels, n_classes) of one random dataset of the given kind."""
    if kind == "imbalanced":
        n_classes = int(rng.integers(2, 5))
        sizes = (
            [1]
            + [int(rng.integers(1, 4)) for _ in range(n_classes - 2)]
            + [int(rng.integers(60, 200))]
        )
    else:
        n_classes = int(rng.integers(2, 7))
        sizes = [int(rng.integers(1, 3 if kind == "tiny" else 25)) for _ in range(n_classes)]
    labels = rng.permutation(np.repeat(np.arange(n_classes), sizes))
    shape = (labels.size, 3)
    if kind == "ties":
        values = rng.integers(0, 4, shape).astype(np.float32)
    else:
        values = rng.standard_normal(shape).astype(np.float32)
        values[:, 2] += labels  # a feature that does depend on the class
    return values, labels, n_classes


def exact_extremes(inner: np.ndarray, outer: np.ndarray) -> tuple[Fraction, Fraction]:
    """max(outer_EDF - inner_EDF) and max(inner_EDF - outer_EDF) over all values, in exact fractions."""
    differences = [
        Fraction(int(np.sum(outer <= x)), outer.size)
        - Fraction(int(np.sum(inner <= x)), inner.size)
        for x in np.concatenate([inner, outer])
    ]
    return max(differences), -min(differences)


@pytest.mark.filterwarnings(
    "ignore:divide by zero:RuntimeWarning"
)  # scipy p-values of 1-image samples
@pytest.mark.parametrize("kind", ["continuous", "ties", "tiny", "imbalanced"])
def test_exact_mode_matches_scipy_ks_2samp(kind):
    rng = np.random.default_rng({"continuous": 1, "ties": 2, "tiny": 3, "imbalanced": 4}[kind])
    compared = exact_ties = 0
    for _ in range(40):
        values, labels, n_classes = random_case(rng, kind)
        result = dks.signed_ks(values, labels, names(n_classes), bins=None, workers=2)
        for f in range(values.shape[1]):
            for c in range(n_classes):
                inner, outer = values[labels == c, f], values[labels != c, f]
                # float64: scipy >= 1.18 returns the statistic in its inputs' float32.
                reference = ks_2samp(
                    inner.astype(np.float64), outer.astype(np.float64), method="asymp"
                )
                assert abs(abs(result[f, c]) - reference.statistic) <= 1e-9
                outer_ahead, inner_ahead = exact_extremes(inner, outer)
                if outer_ahead == inner_ahead:
                    # An exact tie: scipy's sign then follows float rounding of its EDF differences;
                    # ours is the documented rule, the negative side.
                    exact_ties += 1
                    assert result[f, c] == -float(inner_ahead)
                else:
                    assert (
                        abs(result[f, c] - (-reference.statistic_sign * reference.statistic))
                        <= 1e-9
                    )
                compared += 1
    assert compared > 300
    if kind in ("ties", "tiny"):
        assert exact_ties > 0


def binned_reference(
    values: np.ndarray, labels: np.ndarray, n_classes: int, bins: int
) -> np.ndarray:
    """A plain loop over every (feature, class) pair and every bin, on exact fractions."""
    result = np.zeros((values.shape[1], n_classes))
    for f in range(values.shape[1]):
        column = [float(v) for v in values[:, f]]
        lo, hi = min(column), max(column)
        scale = bins / (hi - lo) if hi > lo else 0.0
        bin_of = [min(math.floor((v - lo) * scale), bins - 1) for v in column]
        for c in range(n_classes):
            inner = [b for b, label in zip(bin_of, labels) if label == c]
            outer = [b for b, label in zip(bin_of, labels) if label != c]
            best_plus = best_minus = Fraction(0)
            for k in range(bins):
                difference = Fraction(sum(b <= k for b in outer), len(outer)) - Fraction(
                    sum(b <= k for b in inner), len(inner)
                )
                best_plus, best_minus = max(best_plus, difference), max(best_minus, -difference)
            result[f, c] = float(best_plus) if best_plus > best_minus else -float(best_minus)
    return result


@pytest.mark.parametrize("bins", [1, 3, 10, 100])
def test_binned_mode_matches_a_per_pair_loop(bins):
    rng = np.random.default_rng(bins)
    for kind in ("continuous", "ties", "tiny", "imbalanced"):
        for _ in range(3):
            values, labels, n_classes = random_case(rng, kind)
            result = dks.signed_ks(values, labels, names(n_classes), bins=bins, workers=2)
            np.testing.assert_allclose(
                result, binned_reference(values, labels, n_classes, bins), rtol=0, atol=1e-12
            )


def test_binned_mode_is_the_exact_statistic_of_the_bin_indices():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 9, 400)
    values = (rng.gamma(2.0, size=(400, 50)) * (1 + labels[:, None] % 3)).astype(np.float32)
    lo, hi = dks.feature_range(values.T.copy(), 0, None)
    bin_values = dks.bin_indices(values.T.copy(), lo, hi, 100).T.astype(np.float32)
    np.testing.assert_array_equal(
        dks.signed_ks(values, labels, names(9), bins=100),
        dks.signed_ks(bin_values, labels, names(9), bins=None),
    )


def test_bin_edges_put_min_in_first_and_max_in_last_bin():
    just_below_quarter = np.nextafter(np.float32(0.25), np.float32(0))
    row = np.array([[0.0, 2.0**-7, just_below_quarter, 0.25, 0.5, 0.75, 1.0]], np.float32)
    lo, hi = dks.feature_range(row, 0, None)
    assert dks.bin_indices(row, lo, hi, 100).tolist() == [[0, 0, 24, 25, 50, 75, 99]]


@pytest.mark.parametrize("bins", [100, None])
def test_constant_feature_gives_zero_for_every_class(bins):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 50)
    values = np.column_stack([np.full(50, 3.5), rng.standard_normal(50)]).astype(np.float32)
    result = dks.signed_ks(values, labels, names(4), bins=bins)
    assert np.all(result[0] == 0) and not np.any(np.signbit(result[0]))
    assert np.all(np.isfinite(result))


@pytest.mark.parametrize("bins", [100, None])
def test_sign_is_positive_when_the_class_has_higher_values(bins):
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
    values = np.array([[5.0, 6.0, 7.0, 1.0, 2.0, 1.5, 2.5, 0.0, 0.5]], np.float32).T
    result = dks.signed_ks(values, labels, names(3), bins=bins)
    assert result[0, 0] == 1.0  # class 0 is above everything else
    assert result[0, 2] == -1.0  # class 2 is below everything else
    assert -1.0 < result[0, 1] < 1.0


@pytest.mark.parametrize("bins", [100, None])
def test_equal_magnitudes_take_the_negative_side(bins):
    # Inner {0, 3}, outer {1, 2}: outer - inner is -1/2 at x = 0 and +1/2 at x = 2.
    values = np.array([[0.0, 3.0, 1.0, 2.0]], np.float32).T
    labels = np.array([0, 0, 1, 1])
    assert dks.signed_ks(values, labels, names(2), bins=bins)[0, 0] == -0.5


def test_blocks_threads_and_memory_layout_do_not_change_results():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 300)
    values = rng.standard_normal((300, 2 * dks.BLOCK_FEATURES + 5)).astype(np.float32)
    reference = np.vstack(
        [dks.signed_ks(values[:, [f]], labels, names(5), workers=1) for f in range(values.shape[1])]
    )
    for layout in (np.ascontiguousarray(values), np.asfortranarray(values)):
        for workers in (1, 3):
            np.testing.assert_array_equal(
                dks.signed_ks(layout, labels, names(5), workers=workers), reference
            )


def test_large_classes_use_exact_64_bit_scores():
    # max(n) * N = 47,000 * 47,010 > 2**31 would overflow 32-bit scores.
    rng = np.random.default_rng(11)
    labels = np.concatenate([np.zeros(47_000, np.int64), np.arange(1, 11)])
    values = rng.standard_normal((labels.size, 2)).astype(np.float32)
    values[labels == 0, 1] += 0.5
    lo, hi = dks.feature_range(values.T.copy(), 0, None)
    bin_values = dks.bin_indices(values.T.copy(), lo, hi, 100).T.astype(np.float32)
    np.testing.assert_array_equal(
        dks.signed_ks(values, labels, names(11)),
        dks.signed_ks(bin_values, labels, names(11), bins=None),
    )


def test_class_without_images_or_with_all_of_them_is_named():
    values = np.zeros((4, 1), np.float32)
    with pytest.raises(ValueError, match="class2"):
        dks.signed_ks(values, np.array([0, 0, 1, 1]), names(3))
    with pytest.raises(ValueError, match="'class0' holds all 4 images"):
        dks.class_sizes(np.array([0, 0, 0, 0]), ["class0", "class1"])


def test_bad_inputs_are_errors():
    labels = np.array([0, 1, 0, 1])
    values = np.ones((4, 2), np.float32)
    values[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite .*\['b'\]"):
        dks.signed_ks(values, labels, names(2), feature_names=["a", "b"])
    with pytest.raises(ValueError, match="labels outside"):
        dks.class_sizes(np.array([0, 1, 2]), names(2))
    with pytest.raises(ValueError, match="bins"):
        dks.signed_ks(np.ones((4, 1), np.float32), labels, names(2), bins=0)
    with pytest.raises(ValueError, match="3 rows of values but 4 labels"):
        dks.signed_ks(np.ones((3, 1), np.float32), labels, names(2))


def side_reference(values: np.ndarray, side: str) -> tuple[float, float, float]:
    """Mode by counting values per 0.02-wide bin in a loop; interval by sorted-rank quantiles."""
    kept = sorted(v for v in values if (v > 0 if side == "positive" else v < 0))
    counts = {}
    for v in kept:
        k = min(math.floor((v + 1) / 0.02), 99)
        counts[k] = counts.get(k, 0) + 1
    # Fullest bin, nearest 0 on ties.
    fullest = max(counts, key=lambda k: (counts[k], -abs(k - 49.5)))
    mode = -1 + 0.02 * fullest + 0.01
    at_mode = sum(v <= mode for v in kept) / len(kept)
    return (
        mode,
        float(np.quantile(kept, max(at_mode - 0.34, 0))),
        float(np.quantile(kept, min(at_mode + 0.34, 1))),
    )


def test_side_summary_against_a_loop():
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [rng.lognormal(-1.5, 0.4, 3000), -rng.lognormal(-2.0, 0.5, 2000), np.zeros(30)]
    )
    values = np.clip(values, -1, 1)
    for side, n in (("positive", 3000), ("negative", 2000)):
        mode, low, high, n_pairs = dks.side_summary(values, side, "central_68")
        assert n_pairs == n
        assert low <= mode <= high
        np.testing.assert_allclose((mode, low, high), side_reference(values, side), atol=1e-9)
    assert np.isnan(dks.side_summary(np.array([0.1, 0.2]), "negative")[0])


def test_percent_histogram_sums_to_100_with_both_ends_inside():
    percent = dks.percent_histogram(np.array([-1.0, -0.99, 0.0, 0.5, 1.0]))
    assert percent.size == 100 and percent.sum() == pytest.approx(100)
    assert percent[0] == 40 and percent[50] == 20 and percent[75] == 20 and percent[99] == 20
