"""Nodes of the dks pipeline: DKS, histogram distances and their per-layer summaries."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.statistics import dks as dks_core
from cnn_feature_behavior.statistics.histogram_distances import histogram_distances
from cnn_feature_behavior.statistics.tables import (
    dks_values,
    embedding_labels,
    embedding_matrix,
    labelled_frame,
    layer_groups,
    mean_images_per_class,
)

logger = logging.getLogger(__name__)


def compute_dks(
    embedding: pd.DataFrame,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    dks_params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Signed KS statistic of every (feature, class) pair, and the class sizes it was computed on."""
    labels, class_names = embedding_labels(embedding, image_index)
    values = embedding_matrix(embedding, feature_manifest)
    matrix = dks_core.signed_ks(
        values,
        labels,
        class_names,
        bins=dks_params["bins"],
        workers=dks_params.get("workers"),
        feature_names=feature_manifest["feature"].astype(str).tolist(),
    )
    logger.info(
        "DKS of %d features x %d classes over %d images (bins: %s)",
        matrix.shape[0],
        matrix.shape[1],
        len(labels),
        dks_params["bins"],
    )
    sizes = np.bincount(labels, minlength=len(class_names))
    class_sizes = pd.DataFrame(
        {
            "label": np.arange(len(class_names), dtype=np.int64),
            "class_name": class_names,
            "n_images": sizes,
        }
    )
    return labelled_frame(matrix, feature_manifest, class_names), class_sizes


def compute_histogram_distances(
    embedding: pd.DataFrame,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    dks_params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """KL divergence (inner || outer) and Bhattacharyya distance of every (feature, class) pair."""
    labels, class_names = embedding_labels(embedding, image_index)
    values = embedding_matrix(embedding, feature_manifest)
    settings = dks_params["histogram_distances"]
    kl, bhattacharyya = histogram_distances(
        values,
        labels,
        class_names,
        bins=settings["bins"],
        smoothing=settings["smoothing"],
        workers=dks_params.get("workers"),
        feature_names=feature_manifest["feature"].astype(str).tolist(),
    )
    return (
        labelled_frame(kl, feature_manifest, class_names),
        labelled_frame(bhattacharyya, feature_manifest, class_names),
    )


def summarise_dks_by_layer(
    dks: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    dks_class_sizes: pd.DataFrame,
    dataset: str,
    interval: str,
) -> pd.DataFrame:
    """Per layer and side, the DKS mode and its 68% bars by rule `interval` (Figure 5)."""
    if interval not in dks_core.INTERVAL_RULES:
        raise ValueError(
            f"parameter dks.layer_summary.interval must be one of {dks_core.INTERVAL_RULES}, "
            f"got {interval!r}"
        )
    values = dks_values(dks, feature_manifest)
    rows = []
    for layer, rows_of_layer in layer_groups(feature_manifest, with_kinds=False):
        layer_values = values[rows_of_layer]
        zeros = int(np.count_nonzero(layer_values == 0))
        if zeros:
            logger.info(
                "layer %s: %d of %d DKS values are exactly 0 (on neither side)",
                layer,
                zeros,
                layer_values.size,
            )
        for side in ("positive", "negative"):
            mode, low, high, n_pairs = dks_core.side_summary(layer_values, side, interval)
            if n_pairs == 0:
                logger.warning("layer %s has no %s DKS values: its summary is NaN", layer, side)
            rows.append(
                {
                    "dataset": dataset,
                    "layer": layer,
                    "side": side,
                    "mode": mode,
                    "low": low,
                    "high": high,
                    "interval": interval,
                    "n_pairs": n_pairs,
                }
            )
    summary = pd.DataFrame(rows)
    summary["mean_images_per_class"] = mean_images_per_class(dks_class_sizes)
    return summary


def histogram_dks_by_layer(
    dks: pd.DataFrame, feature_manifest: pd.DataFrame, dataset: str
) -> pd.DataFrame:
    """Percent of (feature, class) pairs per DKS bin, for each layer and for all conv / fc layers."""
    values = dks_values(dks, feature_manifest)
    edges = dks_core.SUMMARY_EDGES
    frames = [
        pd.DataFrame(
            {
                "dataset": dataset,
                "group": group,
                "bin_left": edges[:-1],
                "bin_right": edges[1:],
                "percent": dks_core.percent_histogram(values[rows_of_group]),
            }
        )
        for group, rows_of_group in layer_groups(feature_manifest, with_kinds=True)
    ]
    return pd.concat(frames, ignore_index=True)
