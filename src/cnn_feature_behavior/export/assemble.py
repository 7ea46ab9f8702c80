"""The exported files' models from a refitted classifier and the source network it was fitted on.

The embedding's plan (plan.json) says how its features were made: the source model, its
weights' digest and the crops. The network loaded now must be that one, or the exported model
would compute other features than the classifier was fitted on: a different digest (other
weights found first, e.g. Keras' own file added to its cache since) is an error.
"""

from __future__ import annotations

from typing import Any

import keras
import pandas as pd

from cnn_feature_behavior.export.fit import ExportFit
from cnn_feature_behavior.export.keras_model import (
    Geometry,
    Taps,
    build_classifier,
    features_model,
)
from cnn_feature_behavior.export.model_card import (
    SourceDescription,
    features_metadata,
    model_metadata,
)
from cnn_feature_behavior.export.model_file import ExportedModel
from cnn_feature_behavior.extraction.source_models import preprocess
from cnn_feature_behavior.extraction.stream import weights_digest


def checked_source(
    description: dict[str, Any], name: str, spec: dict[str, Any], backbone: keras.Model
) -> SourceDescription:
    """The source model, once it is the one the embedding was extracted with."""
    if description.get("source_model") != name:
        raise ValueError(
            f"the embedding was extracted with source model {description.get('source_model')!r}, "
            f"not {name!r}: rerun feature_extraction with --params source_model={name}"
        )
    digest = weights_digest(backbone)
    if digest != description.get("weights"):
        raise ValueError(
            f"source model {name} loads other weights now (digest {digest}) than the embedding "
            f"was extracted with ({description.get('weights')}): rerun feature_extraction and "
            "the study, or make the same weights file the first source found"
        )
    return SourceDescription(
        name=name,
        architecture=str(spec.get("architecture")),
        preprocessing=str(spec.get("preprocessing")),
        weights_digest=digest,
    )


def exported_models(
    fit: ExportFit,
    source: SourceDescription,
    backbone: keras.Model,
    spec: dict[str, Any],
    manifest: pd.DataFrame,
    description: dict[str, Any],
    dataset: str,
) -> tuple[ExportedModel, ExportedModel]:
    """(classifier, features): the Keras models with their metadata."""
    geometry = Geometry(
        n_crops=int(description["crops"]),
        resize=int(description["resize"]),
        crop=int(description["crop"]),
    )
    taps = Taps.of(manifest, fit.linear_map.columns)
    classifier = build_classifier(
        backbone,
        lambda images: preprocess(images, spec),
        taps,
        fit.linear_map,
        geometry,
        name=f"{source.name}_{dataset}_classifier",
    )
    metadata = model_metadata(fit, source, geometry, taps, dataset)
    features = features_model(classifier, name=f"{source.name}_{dataset}_features")
    return (
        ExportedModel(classifier, metadata),
        ExportedModel(features, features_metadata(metadata, fit.feature_names)),
    )
