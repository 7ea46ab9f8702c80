"""Differences between transfer results with their intervals: the `transfer_comparisons` table.

Every difference is paired (the same test images, the same repetitions) and of the mean
per-class accuracy, the primary figure. Compared, per kind (full network, FNE) and size below
100%: each ranking against `random` (the mean over its draws) and each DKS ranking against
`anova_f`; each layer against the best layer; each selection against the best selection; and
(`baseline` none) every configuration alone, its own figure with its interval. The best layer
and the best selection are chosen on the training split alone, by their cross-validated mean
per-class accuracy (`best_rows`), never by test accuracy.

The 95% interval is a percentile bootstrap (`comparisons.resamples` replicates, seeded): each
replicate draws the repetitions with replacement (where there are two or more), within each the
test images again, class by class (so that every class keeps its images' count and the mean
per-class accuracy stays defined; with one official split this is the whole interval), and the
random draws with replacement. A difference is `better` or `worse` where its interval excludes
zero, else `no detectable difference`. Written by hand: scipy's `bootstrap` resamples one level
of independent observations, and this design has three nested ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cnn_feature_behavior.transfer.features import ANOVA_F, RANKINGS

RANDOM, LAYER, NONE = "random", "layer", "none"
BEST_LAYER, BEST_SELECTION = "best_layer", "best_selection"
BETTER, TIED, WORSE = "better", "no detectable difference", "worse"
COMPARISON_COLUMNS = (
    "dataset",
    "source_model",
    "embedding",
    "layer",
    "ranking",
    "fraction",
    "baseline",
    "difference",
    "ci_low",
    "ci_high",
    "verdict",
)
CONFIGURATION = ("embedding", "layer", "selection", "fraction")


@dataclass(frozen=True)
class RepetitionPredictions:
    """One repetition's result rows and each row's test predictions (rows in the results'
    order, then test images)."""

    results: pd.DataFrame
    predictions: np.ndarray
    test_labels: np.ndarray


def configuration_key(row) -> tuple:
    """(embedding, layer, selection, fraction) with None for the absent ones."""
    return tuple(None if pd.isna(row[name]) else row[name] for name in CONFIGURATION)


def best_rows(results: pd.DataFrame) -> dict[str, tuple | None]:
    """The best layer and the best selection (a DKS ranking or ANOVA-F below 100% of the
    features) by their mean over the repetitions of the cross-validated mean per-class accuracy
    on the training split; ties to the lower cross-validated loss, then fewer features, then
    table order. Test figures are not read."""
    frame = results.assign(_key=[configuration_key(row) for _, row in results.iterrows()])
    scores = frame.groupby("_key", sort=False).agg(
        cv=("cv_mean_per_class_accuracy", "mean"),
        loss=("cv_loss", "mean"),
        features=("n_features", "first"),
        embedding=("embedding", "first"),
        selection=("selection", "first"),
        fraction=("fraction", "first"),
    )
    scores["position"] = np.arange(len(scores))
    layers = scores[(scores["embedding"] == LAYER) & scores["selection"].isna()]
    selections = scores[
        scores["selection"].isin([*RANKINGS, ANOVA_F]) & (scores["fraction"].astype(float) < 1.0)
    ]
    return {BEST_LAYER: _best(layers), BEST_SELECTION: _best(selections)}


def _best(scores: pd.DataFrame) -> tuple | None:
    scores = scores[scores["cv"].notna()]
    if scores.empty:
        return None
    ranked = scores.assign(_cv=-scores["cv"], _loss=scores["loss"].fillna(np.inf))
    ranked = ranked.sort_values(["_cv", "_loss", "features", "position"], kind="stable")
    return ranked.index[0]


@dataclass(frozen=True)
class Bootstrap:
    """Every configuration's observed mean per-class accuracy (the mean over the repetitions,
    and over the draws for random) and its (resamples,) bootstrap replicates, all drawn from
    the same resampled repetitions and test images (so that differences are paired)."""

    observed: dict[tuple, float]
    replicates: dict[tuple, np.ndarray]

    def difference(self, key: tuple, baseline: tuple | None, level: float) -> tuple:
        """(difference, interval low, interval high, verdict) of key minus baseline (None: the
        configuration's own figure, no verdict)."""
        if baseline is None:
            observed, replicates = self.observed[key], self.replicates[key]
        else:
            observed = self.observed[key] - self.observed[baseline]
            replicates = self.replicates[key] - self.replicates[baseline]
        tail = 100 * (1 - level) / 2
        low, high = np.percentile(replicates, [tail, 100 - tail])
        if baseline is None:
            verdict = None
        else:
            verdict = BETTER if low > 0 else WORSE if high < 0 else TIED
        return float(observed), float(low), float(high), verdict


# Rows of resample weights multiplied at once (a 25,000-image test split: 25 MB of float32).
WEIGHT_BLOCK = 256


def class_resample_weights(
    labels: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """(resamples, images) float32 weights w with w @ correct = the mean per-class accuracy of
    a resample of the images drawn with replacement within each class: each image's count over
    its class's size and the number of classes."""
    _, positions, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    weights = np.zeros((resamples, labels.size), np.float32)
    for index, size in enumerate(sizes):
        members = np.flatnonzero(positions == index)
        counts = rng.multinomial(size, np.full(size, 1.0 / size), size=resamples)
        weights[:, members] = counts / (size * sizes.size)
    return weights


def mean_per_class_weights(labels: np.ndarray) -> np.ndarray:
    """Weights w with w @ correct = the mean per-class accuracy of the images."""
    _, positions, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / (sizes[positions] * sizes.size)


def bootstrap(
    repetitions: Sequence[RepetitionPredictions], resamples: int, seed: int | Sequence[int]
) -> Bootstrap:
    """The observed figures and bootstrap replicates of every configuration (module
    docstring): per replicate, each repetition slot draws a repetition (where there are two or
    more), one of that repetition's class-stratified resamples of its test images, and the
    random draws with replacement."""
    rng = np.random.default_rng(seed)
    scored, points, rows = [], [], []
    for repetition in repetitions:
        correct = (repetition.predictions == repetition.test_labels[None, :]).T.astype(np.float32)
        blocks = []
        for start in range(0, resamples, WEIGHT_BLOCK):
            size = min(WEIGHT_BLOCK, resamples - start)
            blocks.append(class_resample_weights(repetition.test_labels, size, rng) @ correct)
        scored.append(np.concatenate(blocks))  # (resamples, rows)
        points.append(mean_per_class_weights(repetition.test_labels) @ correct)
        rows.append(_rows_by_configuration(repetition.results))
    n_slots = len(repetitions)
    chosen = rng.integers(0, n_slots, size=(resamples, n_slots)) if n_slots > 1 else None
    image_resample = [rng.permutation(resamples) for _ in range(n_slots)]
    observed, replicates = {}, {}
    for key in rows[0]:
        observed[key] = float(
            np.mean([point[found[key]].mean() for point, found in zip(points, rows)])
        )
        total = np.zeros(resamples)
        for slot in range(n_slots):
            repetition = np.full(resamples, slot) if chosen is None else chosen[:, slot]
            n_draws = rows[0][key].size
            draws = rng.integers(0, n_draws, size=(resamples, n_draws))
            for index in np.unique(repetition):
                mask = repetition == index
                values = scored[index][image_resample[slot][mask]][:, rows[index][key]]
                total[mask] += np.take_along_axis(values, draws[mask], axis=1).mean(axis=1)
        replicates[key] = total / n_slots
    return Bootstrap(observed, replicates)


def _rows_by_configuration(results: pd.DataFrame) -> dict[tuple, np.ndarray]:
    """Each configuration's row positions (one; random: one per draw, in draw order)."""
    found: dict[tuple, list[int]] = {}
    for position, (_, row) in enumerate(results.iterrows()):
        found.setdefault(configuration_key(row), []).append(position)
    return {key: np.asarray(positions) for key, positions in found.items()}


def comparisons(
    repetitions: Sequence[RepetitionPredictions],
    resamples: int = 2000,
    level: float = 0.95,
    seed: int | Sequence[int] = 2018,
) -> pd.DataFrame:
    """The `transfer_comparisons` rows (module docstring) of one dataset and source model: its
    repetitions' results and predictions (the results with `dataset` and `source_model`)."""
    results = pd.concat([repetition.results for repetition in repetitions], ignore_index=True)
    figures = bootstrap(repetitions, resamples, seed)
    best = best_rows(results)
    pairs = []
    keys = list(figures.observed)
    for key in keys:
        pairs.append((key, None, NONE))
        embedding, layer, selection, fraction = key
        if embedding == LAYER and best[BEST_LAYER] not in (None, key):
            pairs.append((key, best[BEST_LAYER], BEST_LAYER))
        if selection is None or float(fraction) >= 1.0:
            continue
        for baseline in (RANDOM, ANOVA_F):
            other = (embedding, None, baseline, fraction)
            if selection != baseline and other in figures.observed and selection != RANDOM:
                if baseline == RANDOM or selection in RANKINGS:
                    pairs.append((key, other, baseline))
        if best[BEST_SELECTION] not in (None, key):
            pairs.append((key, best[BEST_SELECTION], BEST_SELECTION))
    first = results.iloc[0]
    rows = []
    for key, baseline, name in pairs:
        embedding, layer, selection, fraction = key
        difference, low, high, verdict = figures.difference(key, baseline, level)
        rows.append(
            {
                "dataset": first["dataset"],
                "source_model": first["source_model"],
                "embedding": embedding,
                "layer": layer,
                "ranking": selection,
                "fraction": np.nan if fraction is None else float(fraction),
                "baseline": name,
                "difference": difference,
                "ci_low": low,
                "ci_high": high,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
