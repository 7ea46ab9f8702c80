"""Nodes of the transfer pipeline: thin wiring of cnn_feature_behavior.transfer."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cnn_feature_behavior.statistics.tables import embedding_labels, embedding_matrix
from cnn_feature_behavior.transfer import maps


def compute_embedding_maps(
    embedding: pd.DataFrame,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    maps_params: dict[str, Any],
    source_models: dict[str, Any],
    source_model: str,
    dataset: str,
) -> pd.DataFrame:
    """t-SNE maps (after PCA) of a stratified subsample for the `transfer.maps.embeddings`."""
    labels, class_names = embedding_labels(embedding, image_index)
    values = embedding_matrix(embedding, feature_manifest)
    if source_model not in source_models:
        raise ValueError(f"source_model {source_model!r} is not in source_models")
    return maps.embedding_maps(
        values,
        feature_manifest["layer"].astype(str).tolist(),
        labels,
        class_names,
        embedding.index.astype(str).tolist(),
        maps.MapSettings.from_params(maps_params),
        known_layers=list(source_models[source_model]["layers"]),
        dataset=dataset,
        source_model=source_model,
    )
