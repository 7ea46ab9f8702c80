"""Nodes of the retrieval pipeline: thin wiring of cnn_feature_behavior.transfer.retrieval."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cnn_feature_behavior.statistics.tables import embedding_labels, embedding_matrix
from cnn_feature_behavior.transfer.retrieval import RetrievalSettings, retrieval_scores


def score_retrieval(
    embedding: pd.DataFrame,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    retrieval_params: dict[str, Any],
    fne_params: dict[str, float],
    dataset: str,
    source_model: str,
) -> pd.DataFrame:
    """mAP@k per embedding, every image a query against all the others (`retrieval_scores`,
    docs/data_contracts.md)."""
    labels, _ = embedding_labels(embedding, image_index)
    table = retrieval_scores(
        embedding_matrix(embedding, feature_manifest),
        labels,
        feature_manifest["layer"].astype(str).tolist(),
        RetrievalSettings.from_params(retrieval_params, fne_params),
    )
    table.insert(0, "dataset", dataset)
    table.insert(1, "source_model", source_model)
    table["layer"] = table["layer"].astype(object).where(table["layer"].notna(), None)
    return table
