"""Nodes of the calibration pipeline: davg, thresholds t+ / t-, kept pairs, the cross-dataset fit.

The DKS under randomised labels (dks_randomised, randomised_pair_counts) is computed by the dks
pipeline's compute_statistics node, in the same read of the embedding as the real DKS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.statistics import calibration as core
from cnn_feature_behavior.statistics.partitions import check_dataset_column, gather_partitions
from cnn_feature_behavior.statistics.tables import dks_values, mean_images_per_class

logger = logging.getLogger(__name__)

THRESHOLD_COLUMNS = ("dataset", "source_model", "t_plus", "t_minus", "mean_images_per_class")


def count_real_pairs(dks: pd.DataFrame, feature_manifest: pd.DataFrame) -> pd.DataFrame:
    """Per layer and side, real-label (feature, class) pairs beyond each grid x."""
    return core.layer_pair_counts(
        dks_values(dks, feature_manifest), dks["layer"].astype(str).to_numpy()
    )


def _totals(pair_counts: pd.DataFrame) -> pd.DataFrame:
    return pair_counts.groupby(["side", "x"], sort=False, as_index=False)["count"].sum()


def compute_davg_curve(
    real_pair_counts: pd.DataFrame,
    randomised_pair_counts: pd.DataFrame,
    dks_class_sizes: pd.DataFrame,
) -> pd.DataFrame:
    """davg(x) on both sides (Equation 4), with the mean counts per class it is the difference of."""
    n_classes = len(dks_class_sizes)
    real, randomised = _totals(real_pair_counts), _totals(randomised_pair_counts)
    if not real[["side", "x"]].equals(randomised[["side", "x"]]):
        raise ValueError("real and randomised pair counts are not on the same grid")
    return pd.DataFrame(
        {
            "side": real["side"],
            "x": real["x"],
            "davg": core.davg(real["count"], randomised["count"], n_classes),
            "mean_count_real": real["count"] / n_classes,
            "mean_count_randomised": randomised["count"] / n_classes,
        }
    )


def select_thresholds(
    davg_curve: pd.DataFrame,
    dks: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    dks_class_sizes: pd.DataFrame,
    dataset: str,
    source_model: str,
    calibration_params: dict[str, Any],
) -> pd.DataFrame:
    """t+ and t- maximising davg (the paper's Table 3 row) and how many features stay relevant."""
    best = {}
    for side in core.SIDES:
        curve = davg_curve[davg_curve["side"] == side]
        best[side] = core.best_threshold(curve["x"].to_numpy(), curve["davg"].to_numpy())
    (t_plus, davg_plus), (t_minus, davg_minus) = best["positive"], best["negative"]
    values = dks_values(dks, feature_manifest).astype(np.float64)
    relevant_plus = int(np.count_nonzero((values > t_plus).any(axis=1)))
    relevant_minus = int(np.count_nonzero((values < t_minus).any(axis=1)))
    logger.info(
        "%s: t+ = %.3f (davg %.1f), t- = %.3f (davg %.1f); %d / %d of %d features relevant",
        dataset,
        t_plus,
        davg_plus,
        t_minus,
        davg_minus,
        relevant_plus,
        relevant_minus,
        len(values),
    )
    return pd.DataFrame(
        [
            {
                "dataset": dataset,
                "source_model": source_model,
                "t_plus": t_plus,
                "davg_t_plus": davg_plus,
                "t_minus": t_minus,
                "davg_t_minus": davg_minus,
                "features_relevant_plus": relevant_plus,
                "features_relevant_minus": relevant_minus,
                "mean_images_per_class": mean_images_per_class(dks_class_sizes),
                "repetitions": int(calibration_params["repetitions"]),
                "seed": int(calibration_params["seed"]),
            }
        ]
    )


def compute_layer_kept(
    real_pair_counts: pd.DataFrame,
    randomised_pair_counts: pd.DataFrame,
    thresholds: pd.DataFrame,
    feature_manifest: pd.DataFrame,
) -> pd.DataFrame:
    """Percent of each layer's (and all conv / fc / all layers') pairs beyond t+ or t- (Figure 10)."""
    threshold = {
        "positive": float(thresholds["t_plus"].iloc[0]),
        "negative": float(thresholds["t_minus"].iloc[0]),
    }
    kinds = feature_manifest.drop_duplicates("layer").set_index("layer")["layer_kind"].astype(str)

    def kept_at_thresholds(pair_counts: pd.DataFrame) -> pd.DataFrame:
        at_threshold = pd.concat(
            [
                pair_counts[(pair_counts["side"] == side) & (pair_counts["x"] == x)]
                for side, x in threshold.items()
            ]
        )
        if at_threshold["layer"].nunique() * 2 != len(at_threshold):
            raise ValueError(f"thresholds {threshold} are not both on the pair counts' grid")
        kept = at_threshold.pivot(index="layer", columns="side", values="count")
        kept["n_pairs"] = at_threshold.groupby("layer")["n_pairs"].first()
        kept = kept.loc[pd.unique(pair_counts["layer"])]
        groups = [kept]
        for kind in ("conv", "fc"):
            members = kept[kept.index.map(kinds) == kind]
            if len(members):
                groups.append(members.sum().to_frame(kind).T)
        groups.append(kept.sum().to_frame("all").T)
        kept = pd.concat(groups)
        kept["both"] = kept["positive"] + kept["negative"]
        return 100.0 * kept[["positive", "negative", "both"]].div(kept["n_pairs"], axis=0)

    real, randomised = (
        kept_at_thresholds(real_pair_counts),
        kept_at_thresholds(randomised_pair_counts),
    )
    real_long = (
        real.rename_axis("layer")
        .reset_index()
        .melt("layer", var_name="side", value_name="percent_real")
    )
    randomised_long = (
        randomised.rename_axis("layer")
        .reset_index()
        .melt("layer", var_name="side", value_name="percent_randomised")
    )
    return real_long.merge(randomised_long, on=["layer", "side"], sort=False)


def count_class_features(
    dks: pd.DataFrame,
    dks_randomised: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    calibration_params: dict[str, Any],
) -> pd.DataFrame:
    """Per class, features beyond x for real and (first) randomised labels on a coarse grid (Figure 9)."""
    step = calibration_params["class_counts_step"]
    frames = []
    for labels_kind, table in (("real", dks), ("randomised", dks_randomised)):
        values = dks_values(table, feature_manifest)
        classes = np.arange(values.shape[1])
        for side in core.SIDES:
            x = core.threshold_grid(side, step)
            counts = core.class_counts_beyond(values, x, side)  # (classes, x)
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


def fit_threshold_model(
    all_thresholds: dict[str, Callable[[], pd.DataFrame]], thresholds: pd.DataFrame
) -> pd.DataFrame:
    """Fit t = a + b ln(mean images per class) for t+ and t- over every calibrated dataset.

    This run's `thresholds` replaces its own partition (and orders the node after it is saved).
    With fewer than MIN_DATASETS_FOR_FIT datasets, a, b and r_squared are NaN.
    """
    current = thresholds["dataset"].iloc[0]
    frames = gather_partitions(all_thresholds, thresholds, current)
    for partition, frame in frames.items():
        missing = [c for c in THRESHOLD_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"thresholds partition {partition!r} lacks column(s) {missing}")
    check_dataset_column(frames, "thresholds")
    table = pd.concat(frames.values(), ignore_index=True)
    models = table["source_model"].unique().tolist()
    if len(models) > 1:
        raise ValueError(f"thresholds of several source models mixed in one folder: {models}")
    n_datasets = len(table)
    logger.info(
        "threshold fit over %d dataset(s) (this run: %s): %s",
        n_datasets,
        current,
        sorted(table["dataset"].tolist()),
    )
    rows = []
    for column in ("t_plus", "t_minus"):
        a = b = r_squared = np.nan
        if n_datasets < core.MIN_DATASETS_FOR_FIT:
            logger.warning(
                "%s: only %d dataset(s) calibrated for %s, the fit needs %d: a, b, R2 = NaN",
                column,
                n_datasets,
                models[0],
                core.MIN_DATASETS_FOR_FIT,
            )
        else:
            try:
                a, b, r_squared = core.fit_log_model(
                    table["mean_images_per_class"].to_numpy(), table[column].to_numpy()
                )
            except ValueError as error:
                logger.warning("%s: no fit over %d datasets: %s", column, n_datasets, error)
        rows.append(
            {"threshold": column, "a": a, "b": b, "r_squared": r_squared, "n_datasets": n_datasets}
        )
    return pd.DataFrame(rows)
