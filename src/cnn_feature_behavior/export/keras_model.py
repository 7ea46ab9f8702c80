"""The exported classifier as one Keras model of standard layers only, and its features model.

    crops (batch, n_crops, crop, crop, 3): RGB pixel values 0..255 (float32), each image's crops
    cut as extraction cuts them (`extraction.crops`: 1 centre crop, or 10)
      -> preprocessing          Dense(3) on the channels: the source model's preprocessing,
                                a per-pixel affine map (VGG's: RGB to BGR, minus the mean)
      -> features_per_crop      TimeDistributed: the source network up to the taps, each conv
                                tap averaged over space (as extraction's), the configuration's
                                features only (a 0/1 Dense per tap selects a ranked selection's)
      -> crop_mean              the mean over the crops (extraction's mean of crop vectors)
      -> centre, standardisation   (x - mean) / scale, the training images' statistics
      -> fne_levels, fne        for the FNE: Discretization at the thresholds, then -1 / 0 / 1
      -> classifier             Dense: the refitted linear map's weights and intercepts
      -> probabilities          Softmax

Every layer is one of Keras' own, so `keras.saving.load_model` reads the file without this
project or any custom object. The features model is the same graph up to the classifier's input
(the standardised, or three-valued, features).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from cnn_feature_behavior.extraction.stream import build_extractor
from cnn_feature_behavior.transfer.refit import LinearMap

# The affine map found from probes must reproduce the preprocessing on random pixels this closely.
AFFINE_TOLERANCE = 1e-4
CLASSIFIER_INPUT = "classifier_input"


@dataclass(frozen=True)
class Geometry:
    """How an image becomes the model's input: the crops extraction cut for the embedding."""

    n_crops: int
    resize: int
    crop: int


@dataclass(frozen=True)
class Taps:
    """The layers read, in embedding order, and per layer the filters the classifier reads
    (None: all of them, in order)."""

    layers: tuple[str, ...]
    filters: tuple[np.ndarray | None, ...]

    @classmethod
    def of(cls, manifest: pd.DataFrame, columns: np.ndarray) -> Taps:
        """The taps that give the embedding columns `columns` (sorted positions) in order."""
        rows = manifest.iloc[np.asarray(columns)]
        layers = list(pd.unique(rows["layer"].astype(str)))
        runs = (rows["layer"].astype(str) != rows["layer"].astype(str).shift()).sum()
        if runs != len(layers) or not np.all(np.diff(columns) > 0):
            raise ValueError("the classifier's columns must be sorted, each layer's together")
        filters = []
        for layer in layers:
            chosen = rows.loc[rows["layer"].astype(str) == layer, "filter"].to_numpy(np.int64)
            width = int((manifest["layer"].astype(str) == layer).sum())
            whole = np.array_equal(chosen, np.arange(width))
            filters.append(None if whole else chosen)
        return cls(tuple(layers), tuple(filters))


def preprocessing_layer(preprocess: Callable[[np.ndarray], np.ndarray]) -> keras.layers.Dense:
    """A Dense(3) on the channels equal to `preprocess` (uint8 RGB images -> network input),
    found from probes and checked on random pixels; a preprocessing that is no per-pixel affine
    map is an error."""
    probes = np.zeros((1, 1, 4, 3), np.uint8)
    for channel in range(3):
        probes[0, 0, channel + 1, channel] = 100
    out = np.asarray(preprocess(probes), np.float64)[0, 0]
    bias = out[0]
    kernel = (out[1:] - bias) / 100.0  # row i: the output of channel i
    pixels = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    expected = np.asarray(preprocess(pixels), np.float64)
    found = pixels.astype(np.float64) @ kernel + bias
    if not np.allclose(found, expected, rtol=AFFINE_TOLERANCE, atol=AFFINE_TOLERANCE):
        raise ValueError(
            "the source model's preprocessing is not a per-pixel affine map of the RGB values, "
            "so it cannot be a layer of the exported model"
        )
    layer = keras.layers.Dense(3, name="preprocessing")
    layer.build((None, 3))
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return layer


def features_per_crop(backbone: keras.Model, taps: Taps) -> keras.Model:
    """One crop -> the configuration's features: the taps (conv taps averaged over space), each
    tap's selected filters only, concatenated in embedding order."""
    extractor = build_extractor(backbone, taps.layers)
    outputs = []
    for layer, tensor, filters in zip(taps.layers, extractor.outputs, taps.filters, strict=True):
        if filters is not None:
            selection = keras.layers.Dense(
                len(filters), use_bias=False, trainable=False, name=f"{layer}_selection"
            )
            selection.build(tuple(tensor.shape))
            choose = np.zeros((int(tensor.shape[-1]), len(filters)), np.float32)
            choose[filters, np.arange(len(filters))] = 1.0  # x times 1 plus zeros: exact
            selection.set_weights([choose])
            tensor = selection(tensor)
        outputs.append(tensor)
    joined = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(name="taps")(outputs)
    return keras.Model(extractor.inputs, joined, name="features_per_crop")


def standardisation(x: keras.KerasTensor, linear_map: LinearMap) -> keras.KerasTensor:
    """(x - mean) / scale, and the FNE's three values where the map is three-valued."""
    x = keras.layers.Rescaling(1.0, offset=(-linear_map.mean).astype(np.float32), name="centre")(x)
    inverse = (1.0 / linear_map.scale).astype(np.float32)
    x = keras.layers.Rescaling(inverse, name="standardisation")(x)
    if linear_map.fne is None:
        return x
    positive, negative = (np.float32(t) for t in linear_map.fne)
    # Discretization counts a value equal to a boundary as above it; the FNE's 1 is strictly
    # above `positive`, so its boundary is the next float32 up (the values are float32).
    above = float(np.nextafter(positive, np.float32(np.inf)))
    levels = keras.layers.Discretization(
        bin_boundaries=[float(negative), above], output_mode="int", name="fne_levels"
    )(x)
    return keras.layers.Rescaling(1.0, offset=-1.0, name="fne")(levels)


def build_classifier(
    backbone: keras.Model,
    preprocess: Callable[[np.ndarray], np.ndarray],
    taps: Taps,
    linear_map: LinearMap,
    geometry: Geometry,
    name: str = "classifier",
) -> keras.Model:
    """The whole exported model (module doc), ending in the class probabilities."""
    crops = keras.Input((geometry.n_crops, geometry.crop, geometry.crop, 3), name="crops")
    x = preprocessing_layer(preprocess)(crops)
    x = keras.layers.TimeDistributed(features_per_crop(backbone, taps), name="features")(x)
    x = keras.layers.GlobalAveragePooling1D(name="crop_mean")(x)
    x = standardisation(x, linear_map)
    x = keras.layers.Identity(name=CLASSIFIER_INPUT)(x)
    linear = keras.layers.Dense(linear_map.weights.shape[1], name="classifier")
    x = linear(x)
    linear.set_weights(
        [linear_map.weights.astype(np.float32), linear_map.intercepts.astype(np.float32)]
    )
    probabilities = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(crops, probabilities, name=name)


def features_model(classifier: keras.Model, name: str = "features") -> keras.Model:
    """The classifier's graph up to its linear layer's input: the features it classifies."""
    return keras.Model(classifier.inputs, classifier.get_layer(CLASSIFIER_INPUT).output, name=name)
