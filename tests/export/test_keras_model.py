"""The exported Keras graph against extraction's features and the refitted linear map."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_feature_behavior.export.keras_model import (
    Geometry,
    Taps,
    build_classifier,
    features_model,
    preprocessing_layer,
)
from cnn_feature_behavior.extraction.source_models import build_tiny_vgg, preprocess
from cnn_feature_behavior.extraction.stream import build_extractor, feature_manifest
from cnn_feature_behavior.transfer.refit import LinearMap

LAYERS = ["conv1_1", "conv3_1", "conv5_3", "fc6"]
SPEC = {"preprocessing": "caffe"}


def extraction_features(backbone, crops: np.ndarray) -> np.ndarray:
    """Each image's features as extraction computes them: preprocessed crops through the taps,
    each image the float64 mean of its crops' vectors (CropStream.image_features)."""
    n_images, n_crops = crops.shape[:2]
    flat = preprocess(crops.reshape(-1, *crops.shape[2:]), SPEC)
    outputs = build_extractor(backbone, LAYERS).predict_on_batch(flat)
    per_crop = np.concatenate([np.asarray(o, np.float32) for o in outputs], axis=1)
    return (
        per_crop.reshape(n_images, n_crops, -1).astype(np.float64).mean(axis=1).astype(np.float32)
    )


def linear_map(features: np.ndarray, columns: np.ndarray, fne: bool) -> LinearMap:
    rng = np.random.default_rng(5)
    chosen = features[:, columns].astype(np.float64)
    scale = chosen.std(axis=0)
    scale[scale == 0] = 1.0
    return LinearMap(
        configuration="made up",
        columns=columns,
        mean=chosen.mean(axis=0),
        scale=scale,
        fne=(0.15, -0.25) if fne else None,
        weights=rng.standard_normal((columns.size, 4)),
        intercepts=rng.standard_normal(4),
        classes=np.arange(4),
        class_names=("a", "b", "c", "d"),
        solver="logistic_regression",
        regularisation={"regularisation_c": 1.0},
    )


def softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    return np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("n_crops", "fne", "selection"),
    [(1, False, "layer"), (1, True, "all"), (1, False, "ranked"), (10, True, "ranked")],
)
def test_the_model_is_extraction_then_the_linear_map(n_crops, fne, selection):
    backbone = build_tiny_vgg(seed=2)
    manifest = feature_manifest(build_extractor(backbone, LAYERS), LAYERS)
    crops = np.random.default_rng(n_crops).integers(0, 256, (12, n_crops, 32, 32, 3), np.uint8)
    features = extraction_features(backbone, crops)
    columns = {
        "layer": np.flatnonzero(manifest["layer"] == "conv5_3"),
        "all": np.arange(len(manifest)),
        "ranked": np.sort(np.random.default_rng(3).permutation(len(manifest))[:9]),
    }[selection]
    mapped = linear_map(features, columns, fne)
    taps = Taps.of(manifest, columns)
    model = build_classifier(
        backbone, lambda x: preprocess(x, SPEC), taps, mapped, Geometry(n_crops, 36, 32)
    )

    probabilities = model.predict_on_batch(crops.astype(np.float32))
    expected = softmax(mapped.scores(features))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.argmax(probabilities, axis=1), mapped.predict(features))
    seen = features_model(model).predict_on_batch(crops.astype(np.float32))
    np.testing.assert_allclose(seen, mapped.transform(features), rtol=1e-4, atol=1e-4)
    if fne:
        assert set(np.unique(seen)) <= {-1.0, 0.0, 1.0}


def test_taps_of_a_selection_group_each_layers_filters():
    manifest = feature_manifest(build_extractor(build_tiny_vgg(seed=0), LAYERS), LAYERS)
    conv3 = np.flatnonzero(manifest["layer"] == "conv3_1")
    taps = Taps.of(manifest, np.array([0, 1, conv3[1], conv3[3], len(manifest) - 1]))
    assert taps.layers == ("conv1_1", "conv3_1", "fc6")
    assert taps.filters[0] is None  # conv1_1's two filters: the whole layer
    np.testing.assert_array_equal(taps.filters[1], [1, 3])
    np.testing.assert_array_equal(taps.filters[2], [7])
    with pytest.raises(ValueError, match="sorted"):
        Taps.of(manifest, np.array([3, 1]))


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch", "none", "efficientnet_lite", "resnet"])
def test_the_preprocessing_layer_is_the_preprocessing(mode):
    layer = preprocessing_layer(lambda x: preprocess(x, {"preprocessing": mode}))
    pixels = np.random.default_rng(1).integers(0, 256, (2, 5, 7, 3), np.uint8)
    got = np.asarray(layer(pixels.astype(np.float32)))
    np.testing.assert_allclose(
        got, preprocess(pixels, {"preprocessing": mode}), rtol=1e-5, atol=1e-4
    )


def test_a_preprocessing_that_is_not_affine_is_refused():
    with pytest.raises(ValueError, match="not a per-pixel affine map"):
        preprocessing_layer(lambda x: np.sqrt(x.astype(np.float32)))
