"""Receptive fields derived from a layer stack, and the patch a unit sees."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_feature_behavior.extraction.receptive_fields import (
    ReceptiveField,
    SpatialOp,
    crop_receptive_field,
    fields_by_layer,
    receptive_fields,
    spatial_ops_from_keras,
)


def _vgg16_ops() -> list[SpatialOp]:
    ops = []
    for block, n_convs in enumerate((2, 2, 3, 3, 3), start=1):
        ops += [SpatialOp(f"conv{block}_{i}", 3, 1, "same") for i in range(1, n_convs + 1)]
        ops.append(SpatialOp(f"pool{block}", 2, 2, "valid"))
    return ops


def test_vgg16_receptive_fields_match_published_values():
    fields = receptive_fields(_vgg16_ops(), 224)
    published = {
        "conv1_1": 3,
        "conv1_2": 5,
        "pool1": 6,
        "conv2_2": 14,
        "conv3_3": 40,
        "conv4_3": 92,
        "conv5_3": 196,
        "pool5": 212,
    }
    assert {name: fields[name].size for name in published} == published
    assert fields["conv5_3"] == ReceptiveField(size=196, jump=16, first=-90, map_size=14)
    assert fields["conv1_1"] == ReceptiveField(size=3, jump=1, first=-1, map_size=224)


def test_fields_read_from_a_keras_vgg_equal_the_hand_built_stack():
    from cnn_feature_behavior.extraction.source_models.architecture import build_tiny_vgg

    model = build_tiny_vgg(input_size=224, include_fc=True)
    keras_fields = receptive_fields(spatial_ops_from_keras(model), 224)
    expected = receptive_fields(_vgg16_ops(), 224)
    for b, n_convs in enumerate((2, 2, 3, 3, 3), start=1):
        for i in range(1, n_convs + 1):
            assert keras_fields[f"block{b}_conv{i}"] == expected[f"conv{b}_{i}"]


def _impulse_support(layer_specs, input_size):
    """Brute force: for every input pixel, which output units of each layer it reaches.

    All-ones kernels, zero biases and ReLU on a single-channel impulse image: a unit is
    positive exactly when the impulse lies inside what it sees.
    """
    import keras

    inputs = keras.Input((input_size, input_size, 1))
    x, outputs = inputs, []
    for kind, name, kernel, stride, padding in layer_specs:
        if kind == "add":  # an identity shortcut from the output `kernel` layers back
            x = keras.layers.Add(name=name)([x, outputs[-1 - kernel]])
        elif kind == "dw":
            x = keras.layers.DepthwiseConv2D(
                kernel,
                strides=stride,
                padding=padding,
                activation="relu",
                depthwise_initializer="ones",
                bias_initializer="zeros",
                name=name,
            )(x)
        elif kind == "conv":
            x = keras.layers.Conv2D(
                1,
                kernel,
                strides=stride,
                padding=padding,
                activation="relu",
                kernel_initializer="ones",
                bias_initializer="zeros",
                name=name,
            )(x)
        else:
            pool = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
            x = pool(kernel, strides=stride, padding=padding, name=name)(x)
        outputs.append(x)
    model = keras.Model(inputs, outputs)
    impulses = np.eye(input_size * input_size, dtype=np.float32).reshape(
        -1, input_size, input_size, 1
    )
    maps = model.predict(impulses, batch_size=256, verbose=0)
    return model, {spec[1]: m[..., 0] > 0 for spec, m in zip(layer_specs, maps)}


@pytest.mark.parametrize(
    "layer_specs, input_size",
    [
        # VGG's geometry: 3x3 'same' convolutions and 2x2 stride-2 pools.
        (
            [
                ("conv", "c1", 3, 1, "same"),
                ("conv", "c2", 3, 1, "same"),
                ("max", "p1", 2, 2, "valid"),
                ("conv", "c3", 3, 1, "same"),
                ("max", "p2", 2, 2, "valid"),
                ("conv", "c4", 3, 1, "same"),
            ],
            28,
        ),
        # Strided and 'same' windows on odd sizes, where TensorFlow pads asymmetrically.
        (
            [
                ("conv", "a", 5, 2, "same"),
                ("avg", "b", 3, 2, "same"),
                ("conv", "c", 3, 1, "valid"),
                ("max", "d", 2, 1, "same"),
                ("conv", "e", 4, 3, "same"),
            ],
            31,
        ),
        # EfficientNet-Lite's geometry: depthwise windows and an identity shortcut's sum.
        (
            [
                ("conv", "a", 3, 2, "same"),
                ("dw", "b", 5, 1, "same"),
                ("dw", "c", 3, 1, "same"),
                ("add", "d", 2, 1, ""),
                ("dw", "e", 3, 2, "same"),
            ],
            23,
        ),
    ],
)
def test_receptive_fields_match_impulse_responses(layer_specs, input_size):
    model, support = _impulse_support(layer_specs, input_size)
    fields = fields_by_layer(model, input_size)
    ops = receptive_fields(spatial_ops_from_keras(model), input_size)
    assert all(fields[name] == field for name, field in ops.items())
    for name, reached in support.items():
        field = fields[name]
        n_units = reached.shape[1]
        assert field.map_size == n_units, name
        # reached[pixel, i, j]: does the impulse at `pixel` reach unit (i, j)?
        reached = reached.reshape(input_size, input_size, n_units, n_units)
        for i in range(n_units):
            for j in range(n_units):
                rows = np.flatnonzero(reached[:, :, i, j].any(axis=1))
                cols = np.flatnonzero(reached[:, :, i, j].any(axis=0))
                top, bottom = field.span(i)
                left, right = field.span(j)
                expected_rows = np.arange(max(top, 0), min(bottom, input_size))
                expected_cols = np.arange(max(left, 0), min(right, input_size))
                np.testing.assert_array_equal(rows, expected_rows, err_msg=f"{name} unit {i},{j}")
                np.testing.assert_array_equal(cols, expected_cols, err_msg=f"{name} unit {i},{j}")
                # The support is the full box, not just its bounding rows and columns.
                assert reached[:, :, i, j].sum() == len(rows) * len(cols)


def test_a_branch_is_refused_rather_than_given_a_wrong_field():
    import keras

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(2, 3, name="main")(inputs)
    shortcut = keras.layers.Conv2D(2, 3, name="projection")(inputs)
    x = keras.layers.Add(name="sum")([x, shortcut])
    with pytest.raises(ValueError, match="'projection'.*not fed by the layer before it"):
        fields_by_layer(keras.Model(inputs, x), 16)


def test_unknown_spatial_layer_is_refused():
    import keras

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.ZeroPadding2D(2, name="pad")(inputs)
    x = keras.layers.Conv2D(1, 3, name="conv")(x)
    with pytest.raises(ValueError, match="'pad'.*ZeroPadding2D"):
        spatial_ops_from_keras(keras.Model(inputs, x))


def test_crop_is_the_field_clipped_to_the_image():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    field = ReceptiveField(size=10, jump=4, first=-3, map_size=5)
    inner = crop_receptive_field(image, field, 2, 1)  # rows 5..14, cols 1..10
    np.testing.assert_array_equal(inner, image[5:15, 1:11])
    corner = crop_receptive_field(image, field, 0, 4)  # rows -3..6, cols 13..22
    np.testing.assert_array_equal(corner, image[0:7, 13:20])
    with pytest.raises(IndexError):
        crop_receptive_field(image, field, 5, 0)


def test_a_field_wider_than_the_image_is_the_whole_image():
    """conv5_3 of VGG16 on 224 pixels: 196-pixel fields from -90; unit (0, 13) sees the top
    right corner, clipped, not a 196-pixel square mostly outside the image."""
    image = np.arange(224 * 224 * 3, dtype=np.uint32).reshape(224, 224, 3).astype(np.uint8)
    field = receptive_fields(_vgg16_ops(), 224)["conv5_3"]
    corner = crop_receptive_field(image, field, 0, 13)
    np.testing.assert_array_equal(corner, image[0:106, 118:224])
    wide = ReceptiveField(size=500, jump=32, first=-200, map_size=7)
    np.testing.assert_array_equal(crop_receptive_field(image, wide, 3, 3), image)
