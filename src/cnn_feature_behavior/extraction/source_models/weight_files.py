"""Read VGG weights out of Keras weight files, keyed by Keras layer name.

Two layouts are understood:
- Keras' legacy HDF5 (`.h5`, `.hdf5`): groups named after the layers, as in Keras' own ImageNet
  files and in the converted offline default. Layers are matched by name.
- Keras 3 (`.weights.h5`, or a `.keras` archive): groups named by layer class and position
  (`conv2d`, `conv2d_1`, ..., `dense`, `dense_1`), so conv and dense layers are matched by order;
  a third dense layer (a classifier) is ignored.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np

from cnn_feature_behavior.extraction.source_models.architecture import (
    CONV_BLOCKS,
    FC_LAYERS,
    conv_layer_names,
)

LayerWeights = dict[str, tuple[np.ndarray, np.ndarray]]
"""Keras layer name -> (kernel, bias); conv kernels (H, W, I, O), dense kernels (I, O)."""

_AUTO_NAME = re.compile(r"^(conv2d|dense)(?:_(\d+))?$")


def read_layer_weights(path: Path) -> LayerWeights:
    """Every conv and fc layer's (kernel, bias) stored in a Keras weight file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    name = path.name
    if name.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                raise ValueError(f"{path}: a .keras archive without model.weights.h5")
            payload = io.BytesIO(archive.read("model.weights.h5"))
        with h5py.File(payload, "r") as h5:
            return _read_keras3(h5, path)
    if name.endswith(".weights.h5"):
        with h5py.File(path, "r") as h5:
            return _read_keras3(h5, path)
    if name.endswith((".h5", ".hdf5")):
        with h5py.File(path, "r") as h5:
            return _read_legacy(h5, path)
    raise ValueError(f"{path}: unknown weights format (expected .h5, .weights.h5 or .keras)")


def write_legacy_h5(weights: LayerWeights, path: Path) -> None:
    """Write weights in Keras' legacy by-name HDF5 layout (loadable with `model.load_weights`)."""
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = [name.encode() for name in weights]
        h5.attrs["backend"] = b"tensorflow"
        for layer, (kernel, bias) in weights.items():
            group = h5.create_group(layer)
            names = [f"{layer}/kernel:0", f"{layer}/bias:0"]
            group.attrs["weight_names"] = [n.encode() for n in names]
            group.create_dataset(names[0], data=np.asarray(kernel, dtype=np.float32))
            group.create_dataset(names[1], data=np.asarray(bias, dtype=np.float32))


def write_legacy_h5_layers(layers: dict[str, list[tuple[str, np.ndarray]]], path: Path) -> None:
    """Write any layers' named arrays in Keras' legacy HDF5 layout, in the order given.

    `layers` maps a Keras layer name to its (weight name, array) pairs in Keras' order (a batch
    norm: gamma, beta, moving_mean, moving_variance), stored as `{layer}/{weight name}:0`;
    `model.load_weights(path)` loads them by order, `by_name=True` by layer name.
    """
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = [name.encode() for name in layers]
        h5.attrs["backend"] = b"tensorflow"
        for layer, arrays in layers.items():
            group = h5.create_group(layer)
            names = [f"{layer}/{name}:0" for name, _ in arrays]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, (_, array) in zip(names, arrays):
                group.create_dataset(name, data=np.asarray(array, dtype=np.float32))


def read_legacy_h5_layers(path: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Every layer's named arrays of a Keras legacy HDF5 weights file, in file order.

    The inverse of `write_legacy_h5_layers`; a weight name `{layer}/{name}:0` is read as `name`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    with h5py.File(path, "r") as h5:
        if "layer_names" not in h5.attrs:
            raise ValueError(f"{path}: not a Keras HDF5 weights file (no 'layer_names' attribute)")
        layers = {}
        for raw in h5.attrs["layer_names"]:
            layer = raw.decode() if isinstance(raw, bytes) else str(raw)
            names = [
                n.decode() if isinstance(n, bytes) else str(n)
                for n in h5[layer].attrs["weight_names"]
            ]
            layers[layer] = [
                (name.split("/")[-1].removesuffix(":0"), np.asarray(h5[layer][name]))
                for name in names
            ]
    return layers


def check_conv_shapes(
    weights: LayerWeights, expected: dict[str, tuple[int, ...]], origin: str
) -> None:
    """Raise, naming `origin` and the layer, unless every expected conv layer has its shapes."""
    for layer, shape in expected.items():
        if layer not in weights:
            raise ValueError(f"{origin}: conv layer {layer} is missing")
        kernel, bias = weights[layer]
        if kernel.shape != shape or bias.shape != shape[-1:]:
            raise ValueError(
                f"{origin}: {layer} has kernel {kernel.shape} and bias {bias.shape}, "
                f"expected {shape} and {shape[-1:]}"
            )


def _read_legacy(h5: h5py.File, path: Path) -> LayerWeights:
    if "layer_names" not in h5.attrs and "model_weights" in h5:
        h5 = h5["model_weights"]  # a whole model saved with model.save(...h5)
    if "layer_names" not in h5.attrs:
        raise ValueError(f"{path}: not a Keras HDF5 weights file (no 'layer_names' attribute)")
    weights: LayerWeights = {}
    for raw in h5.attrs["layer_names"]:
        layer = raw.decode() if isinstance(raw, bytes) else str(raw)
        group = h5[layer]
        names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]
        ]
        if not names:
            continue
        if len(names) != 2:
            raise ValueError(
                f"{path}: layer {layer} holds {len(names)} arrays, expected kernel and bias"
            )
        weights[layer] = (np.asarray(group[names[0]]), np.asarray(group[names[1]]))
    return weights


def _read_keras3(h5: h5py.File, path: Path) -> LayerWeights:
    if "layers" not in h5:
        raise ValueError(f"{path}: not a Keras 3 weights file (no 'layers' group)")
    found: dict[str, list[tuple[int, tuple[np.ndarray, np.ndarray]]]] = {"conv2d": [], "dense": []}
    for group_name, group in h5["layers"].items():
        match = _AUTO_NAME.match(group_name)
        if not match:
            continue
        variables = group["vars"]
        if len(variables) != 2:
            raise ValueError(
                f"{path}: layer group {group_name} holds {len(variables)} arrays, expected 2"
            )
        position = int(match[2] or 0)
        found[match[1]].append((position, (np.asarray(variables["0"]), np.asarray(variables["1"]))))
    convs = [w for _, w in sorted(found["conv2d"], key=lambda item: item[0])]
    dense = [w for _, w in sorted(found["dense"], key=lambda item: item[0])]
    conv_names = _conv_names_for(len(convs), path)
    weights: LayerWeights = dict(zip(conv_names, convs))
    weights.update(zip(FC_LAYERS, dense[: len(FC_LAYERS)]))
    return weights


def _conv_names_for(n_convs: int, path: Path) -> list[str]:
    for architecture, blocks in CONV_BLOCKS.items():
        if sum(blocks) == n_convs:
            return conv_layer_names(architecture)
    raise ValueError(f"{path}: {n_convs} conv layers match no known VGG architecture")
