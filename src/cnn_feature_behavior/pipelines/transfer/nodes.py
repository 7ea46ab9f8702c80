"""Nodes of the transfer pipeline: thin wiring of cnn_feature_behavior.transfer."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.statistics.tables import embedding_labels, embedding_matrix
from cnn_feature_behavior.transfer import maps
from cnn_feature_behavior.transfer.comparisons import RepetitionPredictions, comparisons
from cnn_feature_behavior.transfer.evaluation import evaluate_split
from cnn_feature_behavior.transfer.settings import FneSettings, MapSettings, TransferSettings
from cnn_feature_behavior.transfer.splits import (
    SPLIT_COLUMNS,
    training_masks,
    transfer_splits,
)

logger = logging.getLogger(__name__)


def split_images(image_index: pd.DataFrame, split_params: dict[str, Any]) -> pd.DataFrame:
    """Train / test membership of every indexed image, per repetition (official or seeded)."""
    return transfer_splits(image_index, split_params)


def evaluate_transfer(
    embedding: pd.DataFrame,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    splits: pd.DataFrame,
    transfer_params: dict[str, Any],
    dks_params: dict[str, Any],
    calibration_params: dict[str, Any],
    dataset: str,
    source_model: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test accuracy of every embedding per split repetition, everything fitted on its training
    images (`transfer_results`), and the paired differences with their intervals
    (`transfer_comparisons`; docs/data_contracts.md).

    Nine inputs, each a catalog entry or parameter block that Kedro wires by name: grouping them
    in a settings object would hide from the pipeline (and kedro-viz) what the node reads.
    """
    settings = TransferSettings.from_params(transfer_params, dks_params, calibration_params)
    labels, class_names = embedding_labels(embedding, image_index)
    values = embedding_matrix(embedding, feature_manifest)
    missing = [c for c in SPLIT_COLUMNS if c not in splits.columns]
    if missing:
        raise ValueError(f"transfer_splits lacks column(s) {missing}; has {list(splits.columns)}")
    is_train = training_masks(embedding.index, splits)
    frames, predictions = [], []
    for repetition, split in splits.groupby("repetition", sort=True):
        _log_unembedded(split, len(embedding.index), repetition)
        evaluation = evaluate_split(
            values,
            labels,
            is_train[int(repetition)],
            feature_manifest["layer"].astype(str).to_numpy(),
            class_names,
            settings,
            repetition=int(repetition),
            feature_names=feature_manifest["feature"].astype(str).tolist(),
        )
        seconds = evaluation.fitted["seconds"]
        logger.info(
            "transfer repetition %s: t+ = %.3f, t- = %.3f on the training images; %.0f s "
            "(standardisation and DKS rankings %.0f s, classifiers %.0f s)",
            repetition,
            evaluation.fitted["t_plus"],
            evaluation.fitted["t_minus"],
            sum(seconds.values()),
            seconds["standardisation_and_rankings"],
            seconds["classifiers"],
        )
        run = (dataset, source_model, str(split["split_source"].iloc[0]), int(repetition))
        frames.append(with_run_columns(evaluation.results, *run))
        predictions.append(
            RepetitionPredictions(frames[-1], evaluation.predictions, evaluation.test_labels)
        )
    if not frames:
        raise ValueError("transfer_splits has no rows: nothing to evaluate")
    table = pd.concat(frames, ignore_index=True)
    table["fraction"] = table["fraction"].astype(np.float64)
    for column in ("layer", "selection"):
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    compared = settings.comparisons
    return table, comparisons(predictions, compared.resamples, compared.level, compared.seed)


def _known_layers(feature_manifest: pd.DataFrame, source_models: dict[str, Any]) -> list[str]:
    """The layers a `transfer.maps.embeddings` name may be: this embedding's, and every layer any
    source model lists (VGG's conv3_3 is skipped, with a warning, for a network with other names;
    a name of no source model is a typo)."""
    known = list(pd.unique(feature_manifest["layer"].astype(str)))
    for spec in source_models.values():
        listed = spec.get("layers") if isinstance(spec, dict) else None
        if isinstance(listed, (list, tuple)):
            known += [str(layer) for layer in listed if str(layer) not in known]
    return known


def _log_unembedded(split: pd.DataFrame, n_embedded: int, repetition: Any) -> None:
    """A split image without an embedding row was rejected at extraction: said, then left out."""
    not_embedded = len(split) - n_embedded
    if not_embedded:
        logger.info(
            "transfer repetition %s: %d split image(s) have no embedding row (rejected at "
            "extraction) and are left out",
            repetition,
            not_embedded,
        )


def with_run_columns(
    results: pd.DataFrame, dataset: str, source_model: str, split_source: str, repetition: int
) -> pd.DataFrame:
    """The contract's run columns inserted in their places."""
    results = results.copy()
    results.insert(0, "dataset", dataset)
    results.insert(1, "source_model", source_model)
    results.insert(results.columns.get_loc("n_features") + 1, "split_source", split_source)
    results.insert(results.columns.get_loc("split_source") + 1, "repetition", repetition)
    return results


def compute_embedding_maps(
    embedding: pd.DataFrame,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    maps_params: dict[str, Any],
    fne_params: dict[str, float],
    source_models: dict[str, Any],
    source_model: str,
    dataset: str,
) -> pd.DataFrame:
    """t-SNE maps (after PCA) of a stratified subsample for the `transfer.maps.embeddings`; the
    FNE map uses the evaluation's thresholds (`transfer.fne`)."""
    labels, class_names = embedding_labels(embedding, image_index)
    values = embedding_matrix(embedding, feature_manifest)
    if source_model not in source_models:
        raise ValueError(f"source_model {source_model!r} is not in source_models")
    return maps.embedding_maps(
        values,
        feature_manifest["layer"].astype(str).tolist(),
        maps.MapImages.of(labels, embedding.index.astype(str).tolist(), class_names),
        maps.for_layers(
            MapSettings.from_params(maps_params, FneSettings.from_params(fne_params)),
            feature_manifest["layer"].tolist(),
            feature_manifest["layer_kind"].tolist(),
        ),
        known_layers=_known_layers(feature_manifest, source_models),
        dataset=dataset,
        source_model=source_model,
    )
