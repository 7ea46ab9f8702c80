"""Nodes of the predict pipeline: thin wiring of cnn_feature_behavior.export.predict."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from cnn_feature_behavior.export.model_file import ExportedModel
from cnn_feature_behavior.export.predict import PredictSettings, predict_folder
from cnn_feature_behavior.ingestion.image_checks import image_limits_from_params

logger = logging.getLogger(__name__)


def predict_images(
    exported_classifier: ExportedModel,
    predict: dict[str, Any],
    feature_extraction: dict[str, Any],
    image_limits: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top classes of every image under `predict.images`; the files that are no readable image
    (or beyond ingestion's size limits), with the reason."""
    images = predict.get("images")
    if not images:
        raise ValueError(
            "predict.images names no folder or image file: kedro run --pipelines predict "
            "--params predict.images=<folder> (with the export's --env and source_model)"
        )
    settings = PredictSettings(
        top_k=predict.get("top_k", 5),
        batch_size=predict.get("batch_size") or feature_extraction["batch_size"],
        decode_workers=predict.get("decode_workers") or feature_extraction["decode_workers"],
        decode_priority=feature_extraction.get("decode_priority", "idle"),
        limits=image_limits_from_params(image_limits),
    )
    predictions, rejects = predict_folder(exported_classifier, Path(images), settings, images)
    logger.info(
        "Predict: %d images under %s classified (%d crop(s) each), %d files not (listed in "
        "prediction_rejects)",
        len(predictions),
        images,
        exported_classifier.metadata["input"]["crops"],
        len(rejects),
    )
    if len(rejects):
        logger.warning(
            "Predict: not classified: %s",
            "; ".join(f"{p}: {r}" for p, r in zip(rejects["path"][:5], rejects["reason"][:5])),
        )
    return predictions, rejects
