"""Where a feature layer's values are read in a source model: its output tensor, by name.

A feature layer is named, in order of precedence:
- by the model's own layer name (any keras.applications network, a user's `.keras` model);
- by the paper's VGG name (`conv4_3`, `fc6`), for VGG's Keras layers (`block4_conv3`, `fc1`);
- by a ConvNeXt block's name (`convnext_tiny_stage_2_block_5`): the block ends in a residual sum
  that Keras keeps as an operation, not a layer; its output is that of the operation fed by the
  block's `_identity` layer (read from Keras' node graph: no public API names it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cnn_feature_behavior.extraction.source_models.architecture import keras_layer_name

if TYPE_CHECKING:
    import keras

_CONVNEXT_BLOCK_END = "_identity"


def layer_output(model: keras.Model, name: str) -> keras.KerasTensor:
    """The output tensor of the feature layer `name` (module doc) in `model`."""
    names = {layer.name for layer in model.layers}
    if name in names:
        return model.get_layer(name).output
    block_end = f"{name}{_CONVNEXT_BLOCK_END}"
    if block_end in names:
        consumers = model.get_layer(block_end)._outbound_nodes
        if len(consumers) == 1 and len(consumers[0].outputs) == 1:
            return consumers[0].outputs[0]
    try:
        keras_name = keras_layer_name(name)
    except ValueError:
        keras_name = None
    if keras_name in names:
        return model.get_layer(keras_name).output
    raise ValueError(missing_layers_message(model, [name]))


def model_layer_name(model: keras.Model, name: str) -> str:
    """The Keras layer of `model` that the feature layer `name` is (its own name, or VGG's layer
    for a paper name); a ConvNeXt block's output is no layer, and an error, as is an absent name."""
    names = {layer.name for layer in model.layers}
    if name in names:
        return name
    try:
        keras_name = keras_layer_name(name)
    except ValueError:
        keras_name = None
    if keras_name in names:
        return keras_name
    raise ValueError(missing_layers_message(model, [name]))


def has_layer(model: keras.Model, name: str) -> bool:
    """Whether `layer_output(model, name)` finds the layer."""
    try:
        layer_output(model, name)
    except ValueError:
        return False
    return True


def missing_layers_message(model: keras.Model, missing: Sequence[str]) -> str:
    """Which layers `model` lacks, and a few of the names it has."""
    names = [layer.name for layer in model.layers]
    shown = ", ".join(names[-12:])
    return (
        f"model {model.name!r} has no layer(s) {list(missing)}; it has {len(names)} layers, the "
        f"last ones: {shown}"
    )
