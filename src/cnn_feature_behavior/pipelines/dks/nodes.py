"""Nodes of the dks pipeline: every per-(feature, class) statistic in one read, layer summaries."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.executors import dask_client
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.statistics import calibration as calibration_core
from cnn_feature_behavior.statistics import dks as dks_core
from cnn_feature_behavior.statistics.blocks import (
    BlockStatistics,
    MatrixColumnReader,
    ShardColumnReader,
    StatisticSettings,
    feature_block_statistics,
)
from cnn_feature_behavior.statistics.tables import (
    check_feature_columns,
    dks_values,
    embedding_labels,
    embedding_matrix,
    labelled_frame,
    layer_groups,
    mean_images_per_class,
)

logger = logging.getLogger(__name__)


def compute_statistics(
    embedding: pd.DataFrame | ShardedEmbeddingDataset,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    dks_params: dict[str, Any],
    calibration_params: dict[str, Any],
    executor: str,
    dask_params: dict[str, Any],
) -> tuple[pd.DataFrame, ...]:
    """DKS, KL / Bhattacharyya and the randomised-label DKS of every (feature, class), one read.

    The embedding (its shards, or an in-memory table) is read one block of feature columns at a
    time, on threads or on Dask (params:executor); returns dks, dks_class_sizes, kl_divergence,
    bhattacharyya_distance, dks_randomised (first repetition) and randomised_pair_counts (per
    layer and side, averaged over the repetitions). Shards must have been extracted from the
    current image_index.
    """
    reader, row_ids = _reader(embedding, image_index, feature_manifest, dks_params)
    labels, class_names = embedding_labels(pd.DataFrame(index=row_ids), image_index)
    permutations = calibration_core.permuted_labels(
        labels, calibration_params["repetitions"], calibration_params["seed"]
    )
    label_sets, sizes = dks_core.check_labellings([labels, *permutations], class_names)
    histogram = dks_params["histogram_distances"]
    settings = StatisticSettings(
        bins=dks_params["bins"], histogram_bins=histogram["bins"], smoothing=histogram["smoothing"]
    )
    with dask_client(executor, dask_params) as client:
        result = feature_block_statistics(
            reader,
            label_sets,
            sizes,
            settings,
            block_features=dks_params.get("block_features"),
            workers=dks_params.get("workers"),
            client=client,
        )
    logger.info(
        "DKS (bins: %s), %d randomised repetition(s) and KL / Bhattacharyya of %d features x %d "
        "classes over %d images: %d blocks of %d features on %s, %.1f s reading, %.1f s computing",
        dks_params["bins"],
        len(permutations),
        len(reader.columns),
        len(class_names),
        len(labels),
        result.n_blocks,
        result.block_features,
        executor,
        result.read_seconds,
        result.compute_seconds,
    )
    return _statistic_tables(result, feature_manifest, class_names, sizes)


def _reader(
    embedding: pd.DataFrame | ShardedEmbeddingDataset,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    dks_params: dict[str, Any],
) -> tuple[MatrixColumnReader | ShardColumnReader, pd.Index]:
    """The embedding's column reader and its row ids, the shards checked against image_index."""
    if isinstance(embedding, pd.DataFrame):
        matrix = embedding_matrix(embedding, feature_manifest)
        return MatrixColumnReader(matrix, embedding.columns), embedding.index
    reader = ShardColumnReader(embedding.path, dks_params.get("keep_shards_open", True))
    check_feature_columns(reader.columns, feature_manifest)
    row_ids = pd.Index(reader.image_ids(), name="image_id")
    planned = [*row_ids, *(r.image_id for r in embedding.rejects())]
    check_embedding_index(planned, image_index, embedding.path)
    return reader, row_ids


def check_embedding_index(planned: list[str], image_index: pd.DataFrame, path: object) -> None:
    """Error unless the embedding was planned over exactly image_index's images.

    `planned`: the embedding's rows and its extraction rejects. Another set means the index was
    rebuilt since extraction (e.g. another max_images_per_class): statistics on the old images
    would not be those of the index the report shows.
    """
    indexed = image_index["image_id"].astype(str)
    unplanned = indexed[~indexed.isin(set(planned))].tolist()
    unindexed = sorted(set(planned) - set(indexed))
    if not unplanned and not unindexed:
        return
    parts = []
    if unplanned:
        parts.append(f"{len(unplanned)} of them are not in the embedding (e.g. {unplanned[:3]})")
    if unindexed:
        parts.append(
            f"{len(unindexed)} embedded images are not in image_index (e.g. {unindexed[:3]})"
        )
    raise ValueError(
        f"the embedding at {path} was extracted from {len(planned)} images but image_index has "
        f"{len(indexed)}: {'; '.join(parts)}. The image index changed since extraction (e.g. "
        "max_images_per_class): run `kedro run --pipelines feature_extraction` with the same "
        "--params, then dks"
    )


def _statistic_tables(
    result: BlockStatistics,
    feature_manifest: pd.DataFrame,
    class_names: list[str],
    sizes: np.ndarray,
) -> tuple[pd.DataFrame, ...]:
    class_sizes = pd.DataFrame(
        {
            "label": np.arange(len(class_names), dtype=np.int64),
            "class_name": class_names,
            "n_images": sizes,
        }
    )
    random_names = [f"random_{k}" for k in range(len(class_names))]
    layers = feature_manifest["layer"].astype(str).to_numpy()
    return (
        labelled_frame(result.dks[0], feature_manifest, class_names),
        class_sizes,
        labelled_frame(result.kl, feature_manifest, class_names),
        labelled_frame(result.bhattacharyya, feature_manifest, class_names),
        labelled_frame(result.dks[1], feature_manifest, random_names),
        calibration_core.mean_layer_pair_counts(result.dks[1:], layers),
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
