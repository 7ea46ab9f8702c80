"""Benchmark of the top-feature visualisation: one multi-output pass against one pass per layer.

Runs the offline default VGG16 (`make setup`) on a reference pool from the shared datasets and
prints, measured in this run: seconds per pool image for the single multi-output pass the node
uses, the same for one pass per requested layer (the obvious alternative), and their ratio.

    python benchmarks/bench_feature_visualisation.py [--pool ../shared/datasets/imagenet-sample-mini] [--images 48]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from cnn_feature_behavior.extraction.source_models import load_backbone
from cnn_feature_behavior.extraction.top_patches import (
    FeatureRef,
    folder_pool_paths,
    keras_activations,
    load_centre_crops,
    top_activations,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("conv1_1", "conv3_3", "conv4_3", "conv5_3")


def seconds_per_image(pool, runs, features, batch_size: int) -> float:
    start = time.perf_counter()
    for layers, run in runs:
        batches = (pool[i : i + batch_size] for i in range(0, len(pool), batch_size))
        top_activations(batches, run, [f for f in features if f.layer in layers])
    return (time.perf_counter() - start) / len(pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pool", default=str(PROJECT_ROOT.parent / "shared/datasets/imagenet-sample-mini")
    )
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    config = yaml.safe_load(
        (PROJECT_ROOT / "conf/base/parameters_feature_extraction.yml").read_text()
    )
    source_models, geometry = config["source_models"], config["feature_extraction"]
    pool = load_centre_crops(
        folder_pool_paths(Path(args.pool), args.images),
        geometry["resize"],
        geometry["crop"],
        "pool",
    )
    backbone = load_backbone("vgg16_imagenet", source_models, PROJECT_ROOT)
    features = [FeatureRef(layer, f) for layer in LAYERS for f in range(0, 64, 8)]
    single = [(LAYERS, keras_activations(backbone, LAYERS, "vgg16_imagenet", source_models))]
    per_layer = [
        ((layer,), keras_activations(backbone, [layer], "vgg16_imagenet", source_models))
        for layer in LAYERS
    ]
    # One untimed batch each, so graph tracing is not counted.
    for _, run in single + per_layer:
        run(pool[: args.batch_size])
    one_pass = seconds_per_image(pool, single, features, args.batch_size)
    many_passes = seconds_per_image(pool, per_layer, features, args.batch_size)
    print(
        f"pool: {len(pool)} images from {args.pool}; layers {', '.join(LAYERS)}; "
        f"{len(features)} features; batch {args.batch_size}"
    )
    print(f"one multi-output pass:  {one_pass:.3f} s per pool image")
    print(f"one pass per layer:     {many_passes:.3f} s per pool image")
    print(f"ratio (per layer / one pass): {many_passes / one_pass:.2f}")
    print(f"node's default pool of 100 images: about {100 * one_pass:.0f} s of network time")


if __name__ == "__main__":
    main()
