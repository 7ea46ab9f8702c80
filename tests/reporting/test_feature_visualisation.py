"""Receptive fields, top-activation search, patch crops and the top-features figure."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cnn_feature_behavior.reporting.feature_visualisation import (
    PADDING_GREYS,
    FeatureRef,
    FeatureTile,
    ReceptiveField,
    SpatialOp,
    TopActivation,
    class_figure,
    class_top_features,
    crop_receptive_field,
    patch_mosaic,
    receptive_fields,
    spatial_ops_from_keras,
    top_activations,
)


def _vgg16_ops() -> list[SpatialOp]:
    ops = []
    for block, n_convs in enumerate((2, 2, 3, 3, 3), start=1):
        ops += [SpatialOp(f"conv{block}_{i}", 3, 1, "same") for i in range(1, n_convs + 1)]
        ops.append(SpatialOp(f"pool{block}", 2, 2, "valid"))
    return ops


# --------------------------------------------------------------------------- receptive fields


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
        if kind == "conv":
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
    ],
)
def test_receptive_fields_match_impulse_responses(layer_specs, input_size):
    model, support = _impulse_support(layer_specs, input_size)
    fields = receptive_fields(spatial_ops_from_keras(model), input_size)
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


def test_unknown_spatial_layer_is_refused():
    import keras

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.ZeroPadding2D(2, name="pad")(inputs)
    x = keras.layers.Conv2D(1, 3, name="conv")(x)
    with pytest.raises(ValueError, match="'pad'.*ZeroPadding2D"):
        spatial_ops_from_keras(keras.Model(inputs, x))


def test_crop_inside_equals_slice_and_outside_is_checkerboard():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    field = ReceptiveField(size=10, jump=4, first=-3, map_size=5)
    inner = crop_receptive_field(image, field, 2, 1)  # rows 5..14, cols 1..10
    np.testing.assert_array_equal(inner, image[5:15, 1:11])
    corner = crop_receptive_field(image, field, 0, 4)  # rows -3..6, cols 13..22
    np.testing.assert_array_equal(corner[3:, :7], image[0:7, 13:20])
    padding = np.concatenate([corner[:3].reshape(-1, 3), corner[3:, 7:].reshape(-1, 3)])
    assert set(np.unique(padding)) == set(PADDING_GREYS)
    with pytest.raises(IndexError):
        crop_receptive_field(image, field, 5, 0)


# --------------------------------------------------------------------------- top activations


def _brute_force_top(all_outputs, feature, k):
    out = all_outputs[feature.layer][..., feature.filter]
    ranked = []
    for image in range(out.shape[0]):
        flat = out[image].reshape(-1)
        position = int(np.argmax(flat))
        ranked.append((-float(flat[position]), image, position))
    ranked.sort()
    width = out.shape[2] if out.ndim == 3 else None
    return [
        TopActivation(image, *(divmod(pos, width) if width else (None, None)), -negative)
        for negative, image, pos in ranked[:k]
    ]


@pytest.mark.parametrize("batch_size", [1, 4, 7, 50])
def test_top_activations_equal_a_brute_force_ranking(batch_size):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (23, 12, 12, 3), dtype=np.uint8)
    kernels = rng.normal(size=(3, 3, 3, 5))

    def activations(batch):
        x = batch.astype(np.float64) / 255
        conv = np.zeros((len(batch), 10, 10, 5))
        for dy in range(3):
            for dx in range(3):
                conv += x[:, dy : dy + 10, dx : dx + 10] @ kernels[dy, dx]
        # Rounding creates ties, both between positions and between images.
        return {
            "conv": np.round(np.maximum(conv, 0), 0),
            "fc": np.round(x.mean(axis=(1, 2)) @ kernels[0, 0], 1),
        }

    features = [FeatureRef("conv", f) for f in (0, 3, 4)] + [
        FeatureRef("fc", 2),
        FeatureRef("fc", 0),
    ]
    batches = (images[i : i + batch_size] for i in range(0, len(images), batch_size))
    found = top_activations(batches, activations, features, k=9)
    everything = activations(images)
    for feature in features:
        assert found[feature] == _brute_force_top(everything, feature, 9), feature


def test_top_activations_with_a_pool_smaller_than_k():
    images = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    found = top_activations(
        [images], lambda b: {"fc": np.arange(len(b) * 2).reshape(-1, 2)}, [FeatureRef("fc", 1)], k=9
    )
    assert [t.pool_index for t in found[FeatureRef("fc", 1)]] == [2, 1, 0]


def test_bright_square_is_inside_every_top_patch():
    """A filter that responds to brightness: its top patches are the images with the brightest
    squares, and each patch contains its square."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(
        1,
        5,
        padding="same",
        activation="relu",
        kernel_initializer="ones",
        bias_initializer=keras.initializers.Constant(-60.0),
        name="block1_conv1",
    )(inputs)
    x = keras.layers.MaxPooling2D(2, name="block1_pool")(x)
    x = keras.layers.Conv2D(
        2, 3, padding="same", activation="relu", kernel_initializer="ones", name="block2_conv1"
    )(x)
    model = keras.Model(inputs, x)

    rng = np.random.default_rng(2)
    images = rng.integers(0, 20, (16, 32, 32, 3), dtype=np.uint8)
    brightness = {}
    for image, level in zip(range(0, 16, 1), rng.permutation(np.arange(130, 256, 10))):
        if image % 4 == 3:
            continue  # some images have no square at all
        top, left = rng.integers(0, 28, size=2)
        images[image, top : top + 4, left : left + 4] = level
        brightness[image] = (int(level), int(top), int(left))

    feature = FeatureRef("block2_conv1", 1)
    found = top_activations(
        (images[i : i + 5] for i in range(0, 16, 5)),
        lambda b: {"block2_conv1": model.predict_on_batch(b.astype(np.float32))},
        [feature],
    )[feature]
    brightest = sorted(brightness, key=lambda i: -brightness[i][0])[:9]
    assert [t.pool_index for t in found] == brightest
    field = receptive_fields(spatial_ops_from_keras(model), 32)["block2_conv1"]
    for top_activation in found:
        level, top, left = brightness[top_activation.pool_index]
        patch = crop_receptive_field(
            images[top_activation.pool_index], field, top_activation.y, top_activation.x
        )
        assert (patch[..., 0] == level).sum() == 16, top_activation


# --------------------------------------------------------------------------- feature choice


def test_class_top_features_by_presence_and_absence():
    dks = pd.DataFrame(
        {
            "layer": ["conv1_1", "conv1_1", "conv5_3", "fc7", "fc7"],
            "cat": [0.9, -0.2, 0.5, -0.8, 0.5],
            "dog": [0.0, 0.1, 0.2, 0.3, 0.4],
        },
        index=pd.Index(
            ["conv1_1/n0", "conv1_1/n1", "conv5_3/n7", "fc7/n2", "fc7/n9"], name="feature"
        ),
    )
    presence, absence = class_top_features(dks, "cat", 2)
    assert list(presence.index) == ["conv1_1/n0", "conv5_3/n7"]  # tie at 0.5: table order
    assert list(absence.index) == ["fc7/n2", "conv1_1/n1"]
    presence, absence = class_top_features(dks, "cat", 1, layers=["fc7"])
    assert list(presence.index) == ["fc7/n9"] and list(absence.index) == ["fc7/n2"]
    with pytest.raises(KeyError, match="'bird'.*cat"):
        class_top_features(dks, "bird", 2)
    with pytest.raises(ValueError, match="fc6"):
        class_top_features(dks, "cat", 2, layers=["fc6"])


def test_feature_names_round_trip_and_bad_names_are_refused():
    assert FeatureRef.parse("conv4_3/n458") == FeatureRef("conv4_3", 458)
    assert FeatureRef("fc7", 12).name == "fc7/n12"
    with pytest.raises(ValueError, match="conv4_3-458"):
        FeatureRef.parse("conv4_3-458")


# --------------------------------------------------------------------------- drawing


def _rendered(figure) -> np.ndarray:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=50)
    return np.asarray(Image.open(buffer).convert("L"), dtype=float)


def test_mosaic_places_patches_and_enlarges_small_ones_without_smoothing():
    patch = np.zeros((3, 3, 3), dtype=np.uint8)
    patch[1, 1] = 255
    mosaic = patch_mosaic([patch, np.full((50, 50, 3), 7, np.uint8)], tile=30, gap=2)
    assert mosaic.shape == (3 * 30 + 4 * 2,) * 2 + (3,)
    first = mosaic[2:32, 2:32, 0]
    assert set(np.unique(first)) == {0, 255} and first[15, 15] == 255 and first[0, 0] == 0
    assert (mosaic[2:32, 34:64] == 7).all()
    assert (mosaic[34:, :] == 255).all()  # missing tiles stay white


def test_class_figure_renders_every_row_and_is_not_blank():
    rng = np.random.default_rng(3)
    tile = lambda name, value, fc=False: FeatureTile(  # noqa: E731
        name, value, patch_mosaic([rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)] * 9), fc
    )
    figure = class_figure(
        "cat",
        [tile("conv1_1/n3", 0.91), tile("fc7/n5", 0.8, True)],
        [tile("conv5_3/n1", -0.7)],
        [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)] * 3,
        "vgg16_imagenet",
        "the dataset",
    )
    assert figure.get_suptitle() == "Top features of class 'cat' (vgg16_imagenet)"
    titles = [ax.get_title() for ax in figure.axes]
    assert "conv1_1/n3\nDKS +0.9100" in titles and "fc7/n5\nDKS +0.8000\n(whole image)" in titles
    labels = [ax.get_ylabel() for ax in figure.axes if ax.get_ylabel()]
    assert labels == ["class samples", "presence\n(highest DKS)", "absence\n(lowest DKS)"]
    assert _rendered(figure).std() > 20
