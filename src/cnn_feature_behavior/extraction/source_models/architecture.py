"""VGG architectures with Keras' own layer names, and the paper's names for those layers.

Inside every model the layers keep Keras' VGG names (`block{b}_conv{i}`, `fc1`, `fc2`) so that
Keras' own weight files load by name; tables and figures use the paper's names (`conv{b}_{i}`,
`fc6`, `fc7`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

# Convolutions per block; every block ends with a 2x2 max-pool.
CONV_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_FILTERS = (64, 128, 256, 512, 512)
FC_UNITS = 4096
FC_LAYERS = {"fc1": "fc6", "fc2": "fc7"}

_KERAS_CONV = re.compile(r"^block(\d)_conv(\d)$")
_PAPER_CONV = re.compile(r"^conv(\d)_(\d)$")


def paper_layer_name(keras_name: str) -> str:
    """`block4_conv3` -> `conv4_3`, `fc1` -> `fc6`, `fc2` -> `fc7`."""
    match = _KERAS_CONV.match(keras_name)
    if match:
        return f"conv{match[1]}_{match[2]}"
    if keras_name in FC_LAYERS:
        return FC_LAYERS[keras_name]
    raise ValueError(
        f"{keras_name!r} is not a VGG conv or fc layer name (block<b>_conv<i>, fc1, fc2)"
    )


def keras_layer_name(paper_name: str) -> str:
    """`conv4_3` -> `block4_conv3`, `fc6` -> `fc1`, `fc7` -> `fc2`."""
    match = _PAPER_CONV.match(paper_name)
    if match:
        return f"block{match[1]}_conv{match[2]}"
    for keras_name, paper in FC_LAYERS.items():
        if paper == paper_name:
            return keras_name
    raise ValueError(f"{paper_name!r} is not a paper VGG layer name (conv<b>_<i>, fc6, fc7)")


def conv_layer_names(architecture: str) -> list[str]:
    """Keras names of the architecture's conv layers, input to output."""
    return [
        f"block{block}_conv{i}"
        for block, n_convs in enumerate(_conv_blocks(architecture), start=1)
        for i in range(1, n_convs + 1)
    ]


def conv_kernel_shapes(
    architecture: str, block_filters: tuple[int, ...] = BLOCK_FILTERS
) -> dict[str, tuple[int, int, int, int]]:
    """Keras name -> conv kernel shape (3, 3, inputs, filters), input to output."""
    shapes = {}
    n_in = 3
    for block, (n_convs, filters) in enumerate(zip(_conv_blocks(architecture), block_filters), 1):
        for i in range(1, n_convs + 1):
            shapes[f"block{block}_conv{i}"] = (3, 3, n_in, filters)
            n_in = filters
    return shapes


def build_vgg(
    architecture: str,
    *,
    include_fc: bool,
    input_size: int | None = 224,
    block_filters: tuple[int, ...] = BLOCK_FILTERS,
    fc_units: int = FC_UNITS,
    seed: int | None = None,
) -> keras.Model:
    """A VGG network (no classifier) with Keras' layer names, randomly initialised.

    Without fc layers the input may be any size (`input_size=None`); with them it must be fixed
    because `fc1` sees the flattened `block5_pool` output.
    """
    import keras  # here, not at the top: `make setup` needs the names, not TensorFlow

    if include_fc and input_size is None:
        raise ValueError("a VGG with fc layers needs a fixed input_size")
    if len(block_filters) != 5:
        raise ValueError(f"block_filters needs 5 values, one per block, got {block_filters!r}")
    layer_seeds = iter(range(10_000)) if seed is None else iter(range(seed, seed + 10_000))

    def kernel_init() -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=None if seed is None else next(layer_seeds))

    inputs = keras.Input(shape=(input_size, input_size, 3), name="input_layer")
    x = inputs
    for block, (n_convs, filters) in enumerate(zip(_conv_blocks(architecture), block_filters), 1):
        for i in range(1, n_convs + 1):
            x = keras.layers.Conv2D(
                filters,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=kernel_init(),
                name=f"block{block}_conv{i}",
            )(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    if include_fc:
        x = keras.layers.Flatten(name="flatten")(x)
        for name in FC_LAYERS:
            x = keras.layers.Dense(
                fc_units, activation="relu", kernel_initializer=kernel_init(), name=name
            )(x)
    return keras.Model(inputs, x, name=architecture)


def build_tiny_vgg(
    architecture: str = "vgg16",
    *,
    base_filters: int = 2,
    fc_units: int = 8,
    input_size: int | None = 32,
    include_fc: bool = True,
    seed: int = 0,
) -> keras.Model:
    """A seeded VGG-shaped network with few filters and the real layer names, for tests.

    Filters per block are `base_filters * (1, 2, 4, 8, 8)`, as in VGG (64 * (1, 2, 4, 8, 8)).
    """
    return build_vgg(
        architecture,
        include_fc=include_fc,
        input_size=input_size,
        block_filters=tuple(base_filters * k for k in (1, 2, 4, 8, 8)),
        fc_units=fc_units,
        seed=seed,
    )


def _conv_blocks(architecture: str) -> tuple[int, ...]:
    try:
        return CONV_BLOCKS[architecture]
    except KeyError:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {sorted(CONV_BLOCKS)}"
        ) from None
