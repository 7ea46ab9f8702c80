"""Nodes of the few_shot pipeline: thin wiring of cnn_feature_behavior.transfer.few_shot."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cnn_feature_behavior.statistics.tables import embedding_labels, embedding_matrix
from cnn_feature_behavior.transfer.few_shot import (
    FewShotSettings,
    few_shot_results,
    training_masks,
)


def score_few_shot(
    embedding: pd.DataFrame,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    splits: pd.DataFrame,
    few_shot_params: dict[str, Any],
    fne_params: dict[str, float],
    dataset: str,
    source_model: str,
) -> pd.DataFrame:
    """k-shot accuracy per embedding, k and method over seeded episodes drawn from the transfer
    splits' training images (`few_shot_results`, docs/data_contracts.md)."""
    labels, _ = embedding_labels(embedding, image_index)
    table = few_shot_results(
        embedding_matrix(embedding, feature_manifest),
        labels,
        feature_manifest["layer"].astype(str).tolist(),
        training_masks(embedding.index, splits),
        FewShotSettings.from_params(few_shot_params, fne_params),
    )
    table.insert(0, "dataset", dataset)
    table.insert(1, "source_model", source_model)
    sources = sorted(set(splits["split_source"].astype(str))) if "split_source" in splits else []
    table["split_source"] = ", ".join(sources) or None
    table["layer"] = table["layer"].astype(object).where(table["layer"].notna(), None)
    return table
