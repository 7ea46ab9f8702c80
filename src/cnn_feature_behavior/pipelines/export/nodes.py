"""Nodes of the export pipeline: thin wiring of cnn_feature_behavior.export."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from cnn_feature_behavior.export.agreement import agreement_check
from cnn_feature_behavior.export.assemble import checked_source, exported_models
from cnn_feature_behavior.export.configuration import configuration_label
from cnn_feature_behavior.export.fit import ExportFit, ExportSettings, StudyTables, fit_for_export
from cnn_feature_behavior.export.model_card import card_markdown, model_card
from cnn_feature_behavior.export.model_file import ExportedModel
from cnn_feature_behavior.export.predict import PredictSettings
from cnn_feature_behavior.extraction.embedding_store import (
    PLAN_FILE,
    ShardedEmbeddingDataset,
    read_plan_file,
)
from cnn_feature_behavior.extraction.source_models import load_backbone, source_model_spec
from cnn_feature_behavior.transfer.settings import TransferSettings

logger = logging.getLogger(__name__)


def refit_classifier(
    embedding: pd.DataFrame,
    image_index: pd.DataFrame,
    feature_manifest: pd.DataFrame,
    transfer_splits: pd.DataFrame,
    transfer_results: pd.DataFrame,
    export: dict[str, Any],
    transfer: dict[str, Any],
    dks: dict[str, Any],
    calibration: dict[str, Any],
) -> ExportFit:
    """The configuration to export, refitted on one split's training images with the transfer
    evaluation's settings. Nine inputs, each a catalog entry or parameter block that Kedro wires
    by name (as the transfer node's)."""
    fit = fit_for_export(
        StudyTables(embedding, image_index, feature_manifest, transfer_splits, transfer_results),
        ExportSettings.from_params(export),
        TransferSettings.from_params(transfer, dks, calibration),
    )
    logger.info(
        "Export: %s (%s), %s, %s: test accuracy %.3f, mean per-class %.3f, on %d images",
        configuration_label(fit.configuration),
        fit.chosen_by,
        fit.linear_map.solver,
        fit.linear_map.regularisation,
        fit.accuracy,
        fit.mean_per_class_accuracy,
        len(fit.test_labels),
    )
    return fit


def build_models(
    export_fit: ExportFit,
    embedding_columns: ShardedEmbeddingDataset,
    feature_manifest: pd.DataFrame,
    source_models: dict[str, Any],
    source_model: str,
    dataset: str,
) -> tuple[ExportedModel, ExportedModel]:
    """The classifier and features models on the source network the embedding was made with."""
    description = _plan_description(embedding_columns)
    spec = source_model_spec(source_model, source_models)
    backbone = load_backbone(source_model, source_models)
    source = checked_source(description, source_model, spec, backbone)
    return exported_models(
        export_fit, source, backbone, spec, feature_manifest, description, dataset
    )


def _plan_description(embedding_columns: ShardedEmbeddingDataset) -> dict[str, Any]:
    """How the embedding was made (its plan.json): source model, weights, crops, raw_dir."""
    return read_plan_file(Path(embedding_columns.path) / PLAN_FILE)["description"]


def describe_export(
    exported_classifier: ExportedModel,
    export_fit: ExportFit,
    image_index: pd.DataFrame,
    embedding_columns: ShardedEmbeddingDataset,
    export: dict[str, Any],
    feature_extraction: dict[str, Any],
) -> tuple[dict[str, Any], str]:
    """The model card, once the written classifier agrees with the refit on test images (read
    from the raw_dir the embedding was extracted from)."""
    settings = ExportSettings.from_params(export)
    raw_dir = _plan_description(embedding_columns)["raw_dir"]
    files = {
        str(image_id): Path(raw_dir) / path
        for image_id, path in zip(image_index["image_id"], image_index["path"])
    }
    check = agreement_check(
        exported_classifier,
        export_fit,
        files,
        settings.check_images,
        PredictSettings(
            batch_size=feature_extraction["batch_size"],
            decode_workers=feature_extraction["decode_workers"],
        ),
    )
    if check.n_images and check.agreement < settings.min_agreement:
        raise ValueError(
            f"the exported classifier's top-1 agrees with the refit's on {check.n_agreeing} of "
            f"{check.n_images} test images, below export.min_agreement "
            f"({settings.min_agreement}): {'; '.join(check.disagreeing[:5])}"
        )
    if check.disagreeing:
        logger.warning(
            "Export: %d of %d checked test images get another top-1 than the refit: %s",
            len(check.disagreeing),
            check.n_images,
            "; ".join(check.disagreeing[:5]),
        )
    card = model_card(export_fit, exported_classifier.metadata, check)
    return card, card_markdown(card)
