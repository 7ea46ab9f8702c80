"""Nodes of the calibration pipeline: davg, thresholds t+ / t-, kept pairs, the cross-dataset fit.

The DKS under randomised labels (dks_randomised, randomised_pair_counts) is computed by the dks
pipeline's compute_statistics node, in the same read of the embedding as the real DKS. The
computation lives in `statistics.calibration`, `statistics.layer_kept` and
`statistics.threshold_fit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from cnn_feature_behavior.extraction.layer_kinds import normalise_layer_kind
from cnn_feature_behavior.statistics import calibration as core
from cnn_feature_behavior.statistics.layer_kept import layer_kept_table
from cnn_feature_behavior.statistics.partitions import gather_partitions
from cnn_feature_behavior.statistics.tables import dks_values, mean_images_per_class
from cnn_feature_behavior.statistics.threshold_fit import threshold_fit_table

logger = logging.getLogger(__name__)


def count_real_pairs(dks: pd.DataFrame, feature_manifest: pd.DataFrame) -> pd.DataFrame:
    """Per layer and side, real-label (feature, class) pairs beyond each grid x."""
    return core.layer_pair_counts(
        dks_values(dks, feature_manifest), dks["layer"].astype(str).to_numpy()
    )


def compute_davg_curve(
    real_pair_counts: pd.DataFrame,
    randomised_pair_counts: pd.DataFrame,
    dks_class_sizes: pd.DataFrame,
) -> pd.DataFrame:
    """davg(x) on both sides (Equation 4), with the mean counts per class it is the difference of."""
    return core.davg_curve_table(real_pair_counts, randomised_pair_counts, len(dks_class_sizes))


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
    best = core.thresholds_at_davg_maxima(davg_curve)
    (t_plus, davg_plus), (t_minus, davg_minus) = best["positive"], best["negative"]
    values = dks_values(dks, feature_manifest)
    relevant_plus, relevant_minus = core.features_relevant(values, t_plus, t_minus)
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
    """Percent of each layer's (and all spatial / head / all layers') pairs beyond t+ or t- (Figure 10)."""
    threshold = {
        "positive": float(thresholds["t_plus"].iloc[0]),
        "negative": float(thresholds["t_minus"].iloc[0]),
    }
    kinds = (
        feature_manifest.drop_duplicates("layer")
        .set_index("layer")["layer_kind"]
        .map(normalise_layer_kind)
    )
    return layer_kept_table(real_pair_counts, randomised_pair_counts, threshold, kinds)


def count_class_features(
    dks: pd.DataFrame,
    dks_randomised: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    calibration_params: dict[str, Any],
) -> pd.DataFrame:
    """Per class, features beyond x for real and (first) randomised labels on a coarse grid (Figure 9)."""
    tables = {
        "real": dks_values(dks, feature_manifest),
        "randomised": dks_values(dks_randomised, feature_manifest),
    }
    return core.class_counts_table(tables, calibration_params["class_counts_step"])


def fit_threshold_model(
    all_thresholds: dict[str, Callable[[], pd.DataFrame]], thresholds: pd.DataFrame
) -> pd.DataFrame:
    """Fit t = a + b ln(mean images per class) for t+ and t- over every calibrated dataset.

    This run's `thresholds` replaces its own partition (and orders the node after it is saved).
    With fewer than MIN_DATASETS_FOR_FIT datasets, a, b and r_squared are NaN.
    """
    current = thresholds["dataset"].iloc[0]
    return threshold_fit_table(gather_partitions(all_thresholds, thresholds, current), current)
