"""Nodes of the feature_extraction pipeline."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from cnn_feature_behavior.executors import check_scheduler
from cnn_feature_behavior.extraction.embedding_store import EmbeddingPlan, ShardedEmbeddingDataset
from cnn_feature_behavior.extraction.source_models import (
    available_layers,
    load_backbone,
    source_model_spec,
)
from cnn_feature_behavior.extraction.stream import (
    ExtractionSettings,
    ModelSource,
    SourceModel,
    extraction_rejects_table,
    plan_embedding,
)

logger = logging.getLogger(__name__)


def extract_embedding(
    image_index: pd.DataFrame,
    raw_dir: str,
    source_models: dict[str, Any],
    source_model: str,
    crops: int,
    feature_extraction: dict[str, Any],
    executor: str,
    dask: dict[str, Any],
) -> tuple[pd.DataFrame, EmbeddingPlan]:
    """Feature manifest and the embedding's plan (computed as it is saved, here or on Dask)."""
    # A wrong scheduler address is reported now, not after the model has loaded.
    check_scheduler(executor, dask)
    spec = source_model_spec(source_model, source_models)
    backbone = load_backbone(source_model, source_models)
    model = SourceModel(
        name=source_model,
        spec=spec,
        backbone=backbone,
        layers=tuple(available_layers(backbone, source_model, spec)),
        # Workers take relative weights paths from here, as this process does.
        source=ModelSource(source_model, source_models, str(Path.cwd().resolve())),
    )
    settings = ExtractionSettings.from_params(crops, feature_extraction).for_input_size(
        backbone.inputs[0].shape[1], source_model
    )
    plan, manifest = plan_embedding(image_index, Path(raw_dir), model, settings, executor, dask)
    return manifest, plan


def collect_extraction_rejects(
    embedding_shards: ShardedEmbeddingDataset, feature_manifest: pd.DataFrame
) -> pd.DataFrame:
    """The images the embedding's shards left out, with the reason (shard metadata only)."""
    columns = embedding_shards.feature_columns()
    if columns != feature_manifest["feature"].tolist():
        raise ValueError(
            "the embedding's columns differ from feature_manifest's features: rerun feature_extraction"
        )
    rejects = extraction_rejects_table(embedding_shards.rejects())
    logger.info("Feature extraction: %d image(s) rejected", len(rejects))
    return rejects
