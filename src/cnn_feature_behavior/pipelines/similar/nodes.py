"""Nodes of the similar pipeline: thin wiring of cnn_feature_behavior.extraction.image_files,
cnn_feature_behavior.transfer.similar and the contact sheet figure."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.extraction.image_files import (
    check_same_as_study,
    embed_image_files,
    image_files,
)
from cnn_feature_behavior.extraction.source_models import load_backbone, source_model_spec
from cnn_feature_behavior.extraction.stream import ExtractionSettings, SourceModel
from cnn_feature_behavior.reporting.figures.similar import contact_sheet_figure
from cnn_feature_behavior.statistics.tables import embedding_matrix
from cnn_feature_behavior.transfer.named_embeddings import parse_embedding
from cnn_feature_behavior.transfer.similar import SimilarSettings, similar_images

logger = logging.getLogger(__name__)


def embed_query_images(
    similar: dict[str, Any],
    embedding_shards: ShardedEmbeddingDataset,
    feature_manifest: pd.DataFrame,
    source_models: dict[str, Any],
    source_model: str,
    crops: int,
    feature_extraction: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The query images (`similar.images`) embedded as the study's images were: its model,
    layers and crops, checked against the embedding's plan; unreadable images with the reason."""
    settings = SimilarSettings.from_params(similar)
    paths = image_files(settings.images, "similar.images")
    layers = tuple(pd.unique(feature_manifest["layer"].astype(str)))
    backbone = load_backbone(source_model, source_models)
    spec = source_model_spec(source_model, source_models)
    model = SourceModel(name=source_model, spec=spec, backbone=backbone, layers=layers)
    extraction = ExtractionSettings.from_params(crops, feature_extraction).for_input_size(
        backbone.inputs[0].shape[1], source_model
    )
    check_same_as_study(embedding_shards.path, model, extraction)
    features = feature_manifest["feature"].astype(str).tolist()
    return embed_image_files(paths, model, extraction, features)


def find_similar_images(
    query_embedding: pd.DataFrame,
    embedding: pd.DataFrame,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    similar: dict[str, Any],
    fne: dict[str, float],
    raw_dir: str,
) -> pd.DataFrame:
    """Each query's `similar.k` most similar dataset images in `similar.embedding`: query,
    rank, image_id, path (under raw_dir), class, similarity (cosine)."""
    settings = SimilarSettings.from_params(similar)
    layers = feature_manifest["layer"].astype(str).tolist()
    chosen = parse_embedding(settings.embedding, layers, "similar.embedding")
    rows = image_index.set_index(image_index["image_id"].astype(str)).loc[
        embedding.index.astype(str)
    ]
    images = pd.DataFrame(
        {
            "image_id": rows.index,
            "path": [str(Path(raw_dir) / p) for p in rows["path"].astype(str)],
            "class_name": rows["class_name"].astype(str).to_numpy(),
        }
    )
    table = similar_images(
        query_embedding,
        embedding_matrix(embedding, feature_manifest),
        images,
        chosen,
        settings.k,
        (float(fne["positive"]), float(fne["negative"])),
    )
    logger.info(
        "Similar images: %d queries, %d neighbours each, in %s",
        query_embedding.shape[0],
        settings.k,
        chosen.name,
    )
    return table


def plot_similar_images(
    similar_images: pd.DataFrame, similar: dict[str, Any], dataset: str, source_model: str
) -> Figure:
    """The contact sheet: each query (the first `similar.sheet_queries`) and its neighbours."""
    settings = SimilarSettings.from_params(similar)
    return contact_sheet_figure(
        similar_images,
        max_queries=settings.sheet_queries,
        title=f"Images of {dataset} most similar to each query, {settings.embedding} of "
        f"{source_model} (cosine on the dataset's standardisation)",
    )
