"""Receptive fields of a CNN's units, and the image patch each unit sees.

Derived from the network's layer stack: each square convolution or pooling window widens the
field and multiplies its jump; layers that leave positions where they are (batch norms,
activations, identity residual sums) keep it. Used to crop a feature's top activations to the
part of the image that drove them (`top_patches`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SpatialOp:
    """One layer that changes spatial geometry: a square convolution or pooling window."""

    name: str
    kernel: int
    stride: int
    padding: str  # "same" or "valid", with TensorFlow's placement of "same" padding


@dataclass(frozen=True)
class ReceptiveField:
    """Where a layer's units look in the input image, along one axis (fields are square).

    Unit `i` of the layer's map sees input pixels `first + i * jump` up to
    `first + i * jump + size - 1`; `first` is negative where unit 0 reaches into the padding.
    """

    size: int
    jump: int
    first: int
    map_size: int

    def span(self, index: int) -> tuple[int, int]:
        """Half-open input pixel range [start, stop) seen by unit `index`."""
        if not 0 <= index < self.map_size:
            raise IndexError(f"unit {index} outside a map of {self.map_size} units")
        start = self.first + index * self.jump
        return start, start + self.size


def receptive_fields(ops: Sequence[SpatialOp], input_size: int) -> dict[str, ReceptiveField]:
    """Receptive field of every op's output units, for a square input of `input_size` pixels.

    Standard recursion: each op widens the field by `(kernel - 1)` of the incoming jumps,
    multiplies the jump by its stride, and moves the first unit's start back by its left padding.
    """
    size, jump, first, map_size = 1, 1, 0, input_size
    fields_by_name: dict[str, ReceptiveField] = {}
    for op in ops:
        if op.padding == "same":
            out = math.ceil(map_size / op.stride)
            pad_total = max((out - 1) * op.stride + op.kernel - map_size, 0)
            pad_left = pad_total // 2  # TensorFlow puts the odd pixel on the right/bottom
        elif op.padding == "valid":
            out = (map_size - op.kernel) // op.stride + 1
            pad_left = 0
        else:
            raise ValueError(f"layer {op.name!r}: padding {op.padding!r} is not 'same' or 'valid'")
        if out < 1:
            raise ValueError(
                f"layer {op.name!r}: a {map_size}-unit input is smaller than its {op.kernel} window"
            )
        first -= pad_left * jump
        size += (op.kernel - 1) * jump
        jump *= op.stride
        map_size = out
        fields_by_name[op.name] = ReceptiveField(size=size, jump=jump, first=first, map_size=out)
    return fields_by_name


# Layers that leave every position where it is; anything else unknown is refused rather than
# silently given a wrong field.
_GEOMETRY_NEUTRAL = frozenset(
    {
        "InputLayer",
        "Activation",
        "ReLU",
        "BatchNormalization",
        "Dropout",
        "Rescaling",
        "Normalization",
        "LayerNormalization",
    }
)
_NON_SPATIAL = frozenset({"Flatten", "Dense", "GlobalAveragePooling2D", "GlobalMaxPooling2D"})


def spatial_ops_from_keras(model: Any) -> list[SpatialOp]:
    """The geometry of a Keras conv net, up to its first non-spatial layer.

    The net must be a chain of layers, each fed by the one before, where a residual sum (`Add`)
    may add an earlier output of the chain (an identity shortcut, as in EfficientNet-Lite's
    blocks): the sum's field is that of the chain, which holds the shortcut's. A branch (a
    projection shortcut, Inception's parallel paths) is refused rather than given a wrong field.
    """
    return [op for op in _walk_chain(model) if op is not None]


def fields_by_layer(model: Any, input_size: int) -> dict[str, ReceptiveField]:
    """The receptive field of every layer of the chain (`spatial_ops_from_keras`), layers that
    leave the geometry as it is (batch norms, activations, residual sums) included."""
    walked = list(_walk_chain(model, with_names=True))
    fields = receptive_fields([op for _, op in walked if op is not None], input_size)
    found: dict[str, ReceptiveField] = {}
    current = None
    for name, op in walked:
        current = fields[op.name] if op is not None else current
        if current is not None:
            found[name] = current
    return found


def _walk_chain(model: Any, with_names: bool = False):
    """Each layer of the chain, in order, with its SpatialOp (None for a neutral layer)."""
    head = None
    on_chain: set[int] = set()
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in _NON_SPATIAL:
            break
        if kind != "InputLayer":
            _check_on_chain(layer, kind, head, on_chain)
        head = id(layer.output)
        on_chain.add(head)
        op = _spatial_op(layer, kind)
        yield (layer.name, op) if with_names else op


def _check_on_chain(layer: Any, kind: str, head: int | None, on_chain: set[int]) -> None:
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    ids = [id(tensor) for tensor in inputs]
    chained = ids == [head] or (kind == "Add" and head in ids and all(i in on_chain for i in ids))
    if not chained:
        raise ValueError(
            f"layer {layer.name!r} ({kind}) is not fed by the layer before it (a branch): "
            "receptive fields are computed for a chain of layers with identity shortcuts only"
        )


def _spatial_op(layer: Any, kind: str) -> SpatialOp | None:
    if kind in _GEOMETRY_NEUTRAL or kind == "Add":
        return None
    if kind in {"Conv2D", "DepthwiseConv2D"}:
        window, strides = layer.kernel_size, layer.strides
        if tuple(layer.dilation_rate) != (1, 1):
            raise ValueError(f"layer {layer.name!r}: dilated convolutions are not supported")
    elif kind in {"MaxPooling2D", "AveragePooling2D"}:
        window, strides = layer.pool_size, layer.strides
    else:
        raise ValueError(
            f"layer {layer.name!r} ({kind}): unknown effect on receptive fields; supported are "
            f"Conv2D, DepthwiseConv2D, MaxPooling2D, AveragePooling2D, Add (an identity "
            f"shortcut) and {sorted(_GEOMETRY_NEUTRAL)}"
        )
    if window[0] != window[1] or strides[0] != strides[1]:
        raise ValueError(f"layer {layer.name!r}: non-square window {window} / stride {strides}")
    return SpatialOp(layer.name, int(window[0]), int(strides[0]), layer.padding)


def crop_receptive_field(image: np.ndarray, field: ReceptiveField, y: int, x: int) -> np.ndarray:
    """The part of `image` that unit (y, x) sees: its receptive field clipped to the image.

    A deep layer's field reaches far past the image's edges (conv5_3's is 196 pixels with its
    first unit at -90, EfficientNet's last blocks' wider than the image): only the pixels inside
    the image drove the activation, and they are what is shown.
    """
    top, bottom = field.span(y)
    left, right = field.span(x)
    height, width = image.shape[:2]
    top, bottom = max(top, 0), min(bottom, height)
    left, right = max(left, 0), min(right, width)
    if top >= bottom or left >= right:
        raise ValueError(
            f"unit ({y}, {x}) sees no pixel of a {height}x{width} image: the receptive field "
            "does not fit the image it was computed for"
        )
    return image[top:bottom, left:right]
