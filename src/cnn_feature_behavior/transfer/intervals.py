"""Means with their t intervals, and ties with the best: how retrieval and few-shot scores are
compared (docs/transfer.md).

`mean_interval`: the mean of independent-ish measurements (episodes, queries) and its
Student t interval, mean +- t(0.975, n - 1) s / sqrt(n) at 95%. `tied_with_best`: the paired
comparison of several embeddings measured on the same units (the same episodes or queries): an
embedding is tied with the best-scoring one when the t interval of their per-unit differences
holds 0.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of the finite values: the t interval; NaN bounds with fewer than 2
    values, all NaN with none."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + confidence / 2, values.size - 1) * values.std(ddof=1)
    half /= np.sqrt(values.size)
    return mean, float(mean - half), float(mean + half)


def tied_with_best(per_unit: np.ndarray, confidence: float = CONFIDENCE) -> np.ndarray:
    """For each row of `per_unit` (an embedding's scores on shared units, NaN where a unit has
    none): whether the t interval of its paired difference with the best row (highest mean)
    holds 0. The best row is tied with itself; a difference of fewer than 2 units is a tie."""
    per_unit = np.asarray(per_unit, np.float64)
    best = int(np.nanargmax(np.nanmean(per_unit, axis=1)))
    tied = []
    for row in per_unit:
        _, low, _ = mean_interval(per_unit[best] - row, confidence)
        tied.append(not low > 0)  # NaN (too few units) compares False: a tie
    return np.array(tied, bool)
