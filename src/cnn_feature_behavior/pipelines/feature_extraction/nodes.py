"""Nodes of the feature_extraction pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cnn_feature_behavior.extraction.embedding_store import EmbeddingPlan
from cnn_feature_behavior.extraction.source_models import (
    available_layers,
    load_backbone,
    source_model_spec,
)
from cnn_feature_behavior.extraction.stream import plan_embedding


def extract_embedding(
    image_index: pd.DataFrame,
    raw_dir: str,
    source_models: dict[str, Any],
    source_model: str,
    crops: int,
    feature_extraction: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, EmbeddingPlan]:
    """Feature manifest, extraction rejects, and the embedding's plan (computed as it is saved)."""
    spec = source_model_spec(source_model, source_models)
    backbone = load_backbone(source_model, source_models)
    layers = available_layers(backbone, source_model, spec)
    plan, manifest, rejects = plan_embedding(
        image_index,
        Path(raw_dir),
        backbone,
        source_model,
        spec,
        layers,
        n_crops=crops,
        resize=feature_extraction["resize"],
        crop=feature_extraction["crop"],
        batch_size=feature_extraction["batch_size"],
        shard_size=feature_extraction["shard_size"],
        workers=feature_extraction["decode_workers"],
    )
    return manifest, rejects, plan
