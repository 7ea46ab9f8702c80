"""transfer_comparisons: paired differences of mean per-class accuracy with bootstrap intervals
against a brute-force bootstrap, their verdicts, and the best rows chosen without test labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cnn_feature_behavior.transfer.comparisons import (
    COMPARISON_COLUMNS,
    RepetitionPredictions,
    best_rows,
    bootstrap,
    comparisons,
)

CLASSES, PER_CLASS, DRAWS = 3, 40, 4
# (embedding, layer, selection, fraction, draw, accuracy of its predictions, cv score)
ROWS = [
    ("layer", "conv1_1", None, None, None, 0.55, 0.50),
    ("layer", "conv2_1", None, None, None, 0.75, 0.70),
    ("full_network", None, None, None, None, 0.80, 0.78),
    ("full_network", None, "dks_count", 0.05, None, 0.85, 0.80),
    ("full_network", None, "anova_f", 0.05, None, 0.70, 0.65),
    *[("full_network", None, "random", 0.05, d, 0.60, 0.55) for d in range(DRAWS)],
]


def repetition(seed: int, n_per_class: int = PER_CLASS) -> RepetitionPredictions:
    """Predictions right with each row's accuracy, independently per image; cv scores given."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(CLASSES), n_per_class)
    predictions = []
    for *_, accuracy, _ in ROWS:
        right = rng.random(labels.size) < accuracy
        predictions.append(np.where(right, labels, (labels + 1) % CLASSES))
    results = pd.DataFrame(
        [
            {"dataset": "d", "source_model": "m", "embedding": e, "layer": layer,
             "selection": s, "fraction": f, "draw": d, "n_features": 10,
             "cv_mean_per_class_accuracy": cv, "cv_loss": 1 - cv}
            for e, layer, s, f, d, _, cv in ROWS
        ]
    )  # fmt: skip
    return RepetitionPredictions(results, np.array(predictions), labels)


def mean_per_class(correct: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([correct[labels == c].mean() for c in np.unique(labels)]))


def brute_force(repetitions, rows_a, rows_b, resamples, seed):
    """Replicates of (mean over draws of rows_a) - (mean over draws of rows_b), by loops:
    repetitions drawn with replacement (two or more), test images within each class, draws."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        slots = []
        for slot in range(len(repetitions)):
            index = slot if len(repetitions) == 1 else rng.integers(len(repetitions))
            rep = repetitions[index]
            picked = np.concatenate(
                [
                    rng.choice(np.flatnonzero(rep.test_labels == c), PER_CLASS)
                    for c in range(CLASSES)
                ]
            )
            labels = rep.test_labels[picked]
            scores = []
            for rows in (rows_a, rows_b):
                draws = rng.choice(rows, size=len(rows))
                correct = [rep.predictions[r][picked] == labels for r in draws]
                scores.append(np.mean([mean_per_class(right, labels) for right in correct]))
            slots.append(scores[0] - scores[1])
        values.append(np.mean(slots))
    return np.percentile(values, [2.5, 97.5])


@pytest.mark.parametrize("n_repetitions", [1, 3])
def test_interval_of_a_difference_is_the_brute_force_bootstraps(n_repetitions):
    repetitions = [repetition(seed) for seed in range(n_repetitions)]
    figures = bootstrap(repetitions, 2000, 0)
    dks = ("full_network", None, "dks_count", 0.05)
    random = ("full_network", None, "random", 0.05)
    difference, low, high, verdict = figures.difference(dks, random, 0.95)
    expected = np.mean(
        [
            mean_per_class(rep.predictions[3] == rep.test_labels, rep.test_labels)
            - np.mean(
                [
                    mean_per_class(rep.predictions[r] == rep.test_labels, rep.test_labels)
                    for r in range(5, 9)
                ]
            )
            for rep in repetitions
        ]
    )
    assert difference == pytest.approx(expected, abs=1e-12)
    # Percentiles of 2,000 replicates of mean per-class accuracies in steps of 1/120: two
    # independent runs of the same bootstrap land up to two steps apart.
    reference = brute_force(repetitions, [3], list(range(5, 9)), 2000, 1)
    np.testing.assert_allclose([low, high], reference, atol=0.02)
    assert verdict == ("better" if low > 0 else "worse" if high < 0 else "no detectable difference")
    layers = figures.difference(
        ("layer", "conv1_1", None, None), ("layer", "conv2_1", None, None), 0.95
    )
    np.testing.assert_allclose(layers[1:3], brute_force(repetitions, [0], [1], 2000, 2), atol=0.02)


def test_verdicts_follow_the_interval():
    rep = repetition(0, n_per_class=200)
    figures = bootstrap([rep], 1000, 0)
    dks, anova = ("full_network", None, "dks_count", 0.05), ("full_network", None, "anova_f", 0.05)
    assert figures.difference(dks, anova, 0.95)[3] == "better"  # 0.85 against 0.70
    assert figures.difference(anova, dks, 0.95)[3] == "worse"
    same = figures.difference(dks, dks, 0.95)
    assert same[:3] == (0.0, 0.0, 0.0) and same[3] == "no detectable difference"


def test_comparison_rows():
    table = comparisons([repetition(0), repetition(1)], resamples=200)
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    by_baseline = table.groupby("baseline").size().to_dict()
    # Every configuration alone (2 layers, full network, 3 selections); the other layer against
    # the best; dks_count and anova_f against random, dks_count against anova_f; the selections
    # other than the best (dks_count) against it: anova_f and random.
    assert by_baseline == {
        "none": 6,
        "best_layer": 1,
        "random": 2,
        "anova_f": 1,
        "best_selection": 2,
    }
    worse_layer = table[table["baseline"] == "best_layer"].iloc[0]
    assert worse_layer["layer"] == "conv1_1" and worse_layer["difference"] < 0
    assert set(table["verdict"].dropna()) <= {"better", "no detectable difference", "worse"}
    assert table.loc[table["baseline"] == "none", "verdict"].isna().all()
    assert (table["ci_low"] <= table["difference"] + 1e-12).all()
    assert (table["difference"] <= table["ci_high"] + 1e-12).all()


def test_best_rows_read_the_cross_validated_scores_not_the_test_figures():
    rep = repetition(0)
    best = best_rows(rep.results)
    assert best["best_layer"] == ("layer", "conv2_1", None, None)
    assert best["best_selection"] == ("full_network", None, "dks_count", 0.05)
    # The test predictions and labels are not among its inputs; its choice moves with the
    # cross-validated scores only.
    swapped = rep.results.copy()
    swapped.loc[0, "cv_mean_per_class_accuracy"] = 0.9
    assert best_rows(swapped)["best_layer"] == ("layer", "conv1_1", None, None)
