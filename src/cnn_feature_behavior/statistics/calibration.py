"""Noise calibration of DKS with randomised labels (Section 7 of the paper).

Randomised labels are a seeded permutation of the real ones, so every class keeps its size. On a
grid of x with step GRID_STEP, count the (feature, class) pairs beyond x: DKS > x on the positive
side (x in [0, 1]), DKS < x on the negative side (x in [-1, 0)). The paper's Equation 4,

    davg(x) = mean over classes of #features beyond x (real labels)
              - the same for randomised labels (averaged over the repetitions),

equals (pairs beyond x, real - randomised) / number of classes. t+ and t- are the grid x that
maximise davg on each side; on ties the one nearest 0 (the less strict threshold) is taken.
Comparisons are made in float64 on the values as given (the stored float32 DKS) against the grid
x = k * GRID_STEP computed in float64.

The tables the calibration pipeline writes (the davg curve, the thresholds row, the per-class
counts of Figure 9) are built here from those counts; the share of each layer's pairs kept
(Figure 10) is in `layer_kept`, the fit across datasets in `threshold_fit`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GRID_STEP = 0.001
SIDES = ("positive", "negative")


def threshold_grid(side: str, step: float = GRID_STEP) -> np.ndarray:
    """x values of one side: [0, 1] for 'positive', [-1, 0) for 'negative', in increasing order."""
    steps = round(1.0 / step)
    if not np.isclose(steps * step, 1.0):
        raise ValueError(f"grid step must divide 1 evenly, got {step}")
    if side == "positive":
        return np.arange(0, steps + 1) / steps
    if side == "negative":
        return np.arange(-steps, 0) / steps
    raise ValueError(f"side must be 'positive' or 'negative', got {side!r}")


def permuted_labels(labels: np.ndarray, repetitions: int, seed: int) -> list[np.ndarray]:
    """`repetitions` seeded permutations of labels (class sizes kept); same seed, same result."""
    if int(repetitions) != repetitions or repetitions < 1:
        raise ValueError(f"repetitions must be a positive integer, got {repetitions!r}")
    rng = np.random.default_rng(seed)
    return [rng.permutation(labels) for _ in range(int(repetitions))]


def count_beyond(sorted_values: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """Number of sorted_values > x (positive side) or < x (negative side), for each x (int64)."""
    if side == "positive":
        return sorted_values.size - np.searchsorted(sorted_values, x, side="right")
    if side == "negative":
        return np.searchsorted(sorted_values, x, side="left").astype(np.int64)
    raise ValueError(f"side must be 'positive' or 'negative', got {side!r}")


def pairs_beyond(values: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """How many entries of values (any shape) lie beyond each x on the given side."""
    return count_beyond(np.sort(np.asarray(values, np.float64).ravel()), x, side)


def class_counts_beyond(dks: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """(classes, len(x)): per class (column of a features x classes DKS), features beyond each x."""
    by_class = np.sort(np.asarray(dks, np.float64), axis=0).T
    return np.stack([count_beyond(column, x, side) for column in by_class])


def layer_pair_counts(values: np.ndarray, layers: np.ndarray) -> pd.DataFrame:
    """Per layer (order of first appearance) and side, (feature, class) pairs beyond each grid x.

    Columns: layer, side, x, count (float64), n_pairs (the layer's pairs).
    """
    frames = []
    for layer in pd.unique(layers):
        layer_values = np.sort(values[layers == layer].astype(np.float64).ravel())
        for side in SIDES:
            x = threshold_grid(side)
            frames.append(
                pd.DataFrame(
                    {
                        "layer": layer,
                        "side": side,
                        "x": x,
                        "count": count_beyond(layer_values, x, side).astype(np.float64),
                        "n_pairs": layer_values.size,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def mean_layer_pair_counts(randomised: np.ndarray, layers: np.ndarray) -> pd.DataFrame:
    """layer_pair_counts averaged over the repetitions of a (repetitions, features, classes) DKS."""
    counts = None
    for repetition in randomised:
        # Counted on float32 values, exactly as the stored real DKS is.
        repetition_counts = layer_pair_counts(repetition.astype(np.float32), layers)
        counts = (
            repetition_counts
            if counts is None
            else counts.assign(count=counts["count"] + repetition_counts["count"])
        )
    counts["count"] /= len(randomised)
    return counts


def davg(pairs_real: np.ndarray, pairs_randomised: np.ndarray, n_classes: int) -> np.ndarray:
    """Equation 4 from pair counts beyond x: mean over classes, real minus randomised."""
    return (
        np.asarray(pairs_real, np.float64) - np.asarray(pairs_randomised, np.float64)
    ) / n_classes


def best_threshold(x: np.ndarray, davg_values: np.ndarray) -> tuple[float, float]:
    """(x, davg(x)) at the maximum of davg over one side's grid; ties go to the x nearest 0."""
    x = np.asarray(x, np.float64)
    davg_values = np.asarray(davg_values, np.float64)
    if x.size == 0 or x.shape != davg_values.shape:
        raise ValueError(
            f"x and davg must be non-empty and alike, got {x.shape} and {davg_values.shape}"
        )
    nearest_zero_first = np.argsort(np.abs(x), kind="stable")
    best = nearest_zero_first[np.argmax(davg_values[nearest_zero_first])]
    return float(x[best]), float(davg_values[best])


def davg_curve_table(
    real_pair_counts: pd.DataFrame, randomised_pair_counts: pd.DataFrame, n_classes: int
) -> pd.DataFrame:
    """davg(x) on both sides (Equation 4), with the mean counts per class it is the difference of,
    from per-layer pair counts (`layer_pair_counts`) of the real and the randomised labels."""
    real, randomised = _totals(real_pair_counts), _totals(randomised_pair_counts)
    if not real[["side", "x"]].equals(randomised[["side", "x"]]):
        raise ValueError("real and randomised pair counts are not on the same grid")
    return pd.DataFrame(
        {
            "side": real["side"],
            "x": real["x"],
            "davg": davg(real["count"], randomised["count"], n_classes),
            "mean_count_real": real["count"] / n_classes,
            "mean_count_randomised": randomised["count"] / n_classes,
        }
    )


def _totals(pair_counts: pd.DataFrame) -> pd.DataFrame:
    return pair_counts.groupby(["side", "x"], sort=False, as_index=False)["count"].sum()


def thresholds_at_davg_maxima(davg_curve: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per side, (x, davg(x)) where the davg curve peaks (`best_threshold`)."""
    best = {}
    for side in SIDES:
        curve = davg_curve[davg_curve["side"] == side]
        best[side] = best_threshold(curve["x"].to_numpy(), curve["davg"].to_numpy())
    return best


def features_relevant(values: np.ndarray, t_plus: float, t_minus: float) -> tuple[int, int]:
    """Features (rows of a features x classes DKS) beyond t+ for some class, and beyond t-."""
    values = np.asarray(values, np.float64)
    return (
        int(np.count_nonzero((values > t_plus).any(axis=1))),
        int(np.count_nonzero((values < t_minus).any(axis=1))),
    )


def class_counts_table(tables: dict[str, np.ndarray], step: float) -> pd.DataFrame:
    """Per class, features beyond x on a grid of `step`, for each labels kind (Figure 9).

    `tables` maps a labels kind ("real", "randomised") to its features x classes DKS values.
    """
    frames = []
    for labels_kind, values in tables.items():
        classes = np.arange(values.shape[1])
        for side in SIDES:
            x = threshold_grid(side, step)
            counts = class_counts_beyond(values, x, side)  # (classes, x)
            frames.append(
                pd.DataFrame(
                    {
                        "side": side,
                        "x": np.tile(x, len(classes)),
                        "labels": labels_kind,
                        "class": np.repeat(classes, len(x)),
                        "count": counts.ravel(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)
