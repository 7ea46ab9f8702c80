"""Source models: pretrained CNNs (VGG, any keras.applications network, EfficientNet-Lite0, a
user's .keras model), their layers and preprocessing (docs/source_models.md).

Public API (imported by the extraction and the feature-visualisation code):

- `load_backbone(source_model_name: str, source_models: dict, project_root: Path | None = None)
  -> keras.Model`: the network with its pretrained weights; a VGG with Keras' layer names
  (`block{b}_conv{i}`, `fc1`, `fc2`; fc layers only if the weights have them), a
  keras.applications network (`applications.py`; its classifier only if the weights have it),
  EfficientNet-Lite0 (`efficientnet_lite.py`) or a `.keras` file.
  `source_models` is the `source_models` parameter (conf/base/parameters_feature_extraction.yml).
- `available_layers(model, source_model_name, spec) -> list[str]`: the feature layers, in
  embedding order (VGG: paper names; others: their own names, `default` by the family's rule).
- `preprocess(images_uint8_rgb: np.ndarray, source_model_spec: dict) -> np.ndarray`: float32
  network input by the spec's `preprocessing` (VGG: Caffe BGR mean subtraction).
- `source_model_spec(source_model_name, source_models) -> dict`: one checked config entry, with
  a keras.applications family's defaults filled in.
- `weights_provenance(source_model_name, source_models, project_root=None) -> WeightsProvenance`:
  where the weights come from and whether they are the named model's published ones
  (`provenance.py`), logged (WARNING where they are not).
- `taps.layer_output(model, name)`: the tensor a feature layer is read from.
- `paper_layer_name(keras_name) -> str` (`block4_conv3` -> `conv4_3`, `fc1` -> `fc6`) and
  `keras_layer_name(paper_name) -> str`, its inverse.
- `build_tiny_vgg(architecture="vgg16", *, base_filters=2, fc_units=8, input_size=32,
  include_fc=True, seed=0) -> keras.Model`: a seeded VGG-shaped network with few filters and the
  same layer names, for tests.
- `build_vgg(architecture, *, include_fc, input_size=224, ...)`, `conv_layer_names(architecture)`.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from cnn_feature_behavior.extraction.source_models.architecture import (
    build_tiny_vgg,
    build_vgg,
    conv_layer_names,
    keras_layer_name,
    paper_layer_name,
)

if TYPE_CHECKING:
    from cnn_feature_behavior.extraction.source_models.backbone import (
        available_layers,
        load_backbone,
        preprocess,
        source_model_spec,
        weights_provenance,
    )

# Imported on first use, so that `make setup` (fetch_default_weights) does not load TensorFlow.
_FROM_BACKBONE = (
    "available_layers",
    "load_backbone",
    "preprocess",
    "source_model_spec",
    "weights_provenance",
)


def __getattr__(name: str) -> Any:
    if name in _FROM_BACKBONE:
        return getattr(import_module(f"{__name__}.backbone"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "available_layers",
    "build_tiny_vgg",
    "build_vgg",
    "conv_layer_names",
    "keras_layer_name",
    "load_backbone",
    "paper_layer_name",
    "preprocess",
    "source_model_spec",
    "weights_provenance",
]
