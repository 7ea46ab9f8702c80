"""Exported classifiers built from a network and a made-up linear map: for the export and predict
tests and benchmarks/bench_predict.py (the numbers matter to the tests that compare, not to speed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnn_feature_behavior.export.keras_model import Geometry, Taps, build_classifier
from cnn_feature_behavior.export.model_file import ExportedModel
from cnn_feature_behavior.extraction.source_models import preprocess
from cnn_feature_behavior.extraction.stream import build_extractor, feature_manifest
from cnn_feature_behavior.transfer.refit import LinearMap


def random_linear_map(
    columns: np.ndarray,
    class_names: Sequence[str],
    fne: bool = False,
    standardise: bool = True,
    seed: int = 0,
) -> LinearMap:
    """Seeded weights and, with `standardise`, a made-up standardisation of each column."""
    rng = np.random.default_rng(seed)
    n = len(columns)
    return LinearMap(
        configuration="made up",
        columns=np.asarray(columns),
        mean=rng.uniform(0, 1, n) if standardise else np.zeros(n),
        scale=rng.uniform(0.5, 2, n) if standardise else np.ones(n),
        fne=(0.15, -0.25) if fne else None,
        weights=rng.standard_normal((n, len(class_names))),
        intercepts=rng.standard_normal(len(class_names)),
        classes=np.arange(len(class_names)),
        class_names=tuple(class_names),
        solver="logistic_regression",
        regularisation={"regularisation_c": 1.0},
    )


def exported_classifier(
    backbone,
    layers: Sequence[str],
    linear_map_of,
    geometry: Geometry,
    preprocessing: str = "caffe",
) -> ExportedModel:
    """The classifier of `linear_map_of(manifest)` on `backbone`'s `layers`, with the metadata
    predict reads (class names, input geometry)."""
    manifest = feature_manifest(build_extractor(backbone, list(layers)), list(layers))
    linear_map = linear_map_of(manifest)
    model = build_classifier(
        backbone,
        lambda x: preprocess(x, {"preprocessing": preprocessing}),
        Taps.of(manifest, linear_map.columns),
        linear_map,
        geometry,
    )
    metadata = {
        "class_names": list(linear_map.class_names),
        "input": {"crops": geometry.n_crops, "resize": geometry.resize, "crop": geometry.crop},
    }
    return ExportedModel(model, metadata)
