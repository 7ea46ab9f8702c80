"""The thresholds against images per class across datasets: t = a + b ln(mean images per class).

The paper finds that datasets with fewer images per class get thresholds further from 0; the
fit is ordinary least squares on the log of the mean images per class, over every dataset
calibrated on one source model (one Table 3 row each).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from cnn_feature_behavior.statistics.partitions import check_dataset_column

logger = logging.getLogger(__name__)

THRESHOLD_COLUMNS = ("dataset", "source_model", "t_plus", "t_minus", "mean_images_per_class")
# Two points always fit a line exactly: R-squared only means something from three datasets on.
MIN_DATASETS_FOR_FIT = 3


def fit_log_model(
    mean_images_per_class: np.ndarray, thresholds: np.ndarray
) -> tuple[float, float, float]:
    """Least-squares t = a + b ln(m): (a, b, R-squared); R-squared is NaN when t does not vary."""
    m = np.asarray(mean_images_per_class, np.float64)
    t = np.asarray(thresholds, np.float64)
    if m.shape != t.shape or m.ndim != 1:
        raise ValueError(f"need two 1-D arrays of the same length, got {m.shape} and {t.shape}")
    if np.any(~np.isfinite(m)) or np.any(m <= 0) or np.any(~np.isfinite(t)):
        raise ValueError("mean images per class must be finite and > 0, thresholds finite")
    log_m = np.log(m)
    if np.unique(log_m).size < 2:
        raise ValueError("all datasets have the same mean images per class: the slope is undefined")
    design = np.column_stack([np.ones_like(log_m), log_m])
    (a, b), *_ = np.linalg.lstsq(design, t, rcond=None)
    residual = float(np.sum((t - (a + b * log_m)) ** 2))
    total = float(np.sum((t - t.mean()) ** 2))
    r_squared = 1.0 - residual / total if total > 0 else np.nan
    return float(a), float(b), r_squared


def threshold_fit_table(frames: Mapping[str, pd.DataFrame], current: str) -> pd.DataFrame:
    """Fit t = a + b ln(mean images per class) for t+ and t- over every calibrated dataset.

    `frames` are the Table 3 rows by partition (this run's, `current`, among them). With fewer
    than MIN_DATASETS_FOR_FIT datasets, a, b and r_squared are NaN.
    """
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
        if n_datasets < MIN_DATASETS_FOR_FIT:
            logger.warning(
                "%s: only %d dataset(s) calibrated for %s, the fit needs %d: a, b, R2 = NaN",
                column,
                n_datasets,
                models[0],
                MIN_DATASETS_FOR_FIT,
            )
        else:
            try:
                a, b, r_squared = fit_log_model(
                    table["mean_images_per_class"].to_numpy(), table[column].to_numpy()
                )
            except ValueError as error:
                logger.warning("%s: no fit over %d datasets: %s", column, n_datasets, error)
        rows.append(
            {"threshold": column, "a": a, "b": b, "r_squared": r_squared, "n_datasets": n_datasets}
        )
    return pd.DataFrame(rows)
