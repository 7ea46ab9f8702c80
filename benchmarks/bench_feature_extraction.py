"""Benchmark of the feature_extraction pipeline on real images from ../shared/datasets.

    python benchmarks/bench_feature_extraction.py [--images 32] [--crops 1] [--batch-size 10] [--rounds 8]

Prints, measured in this one run:
- pipeline images/s (plan, decode once, crop, forward, crop mean, shard writes) against the
  bare model's forward pass on the same crops already in memory, and their ratio (target >= 0.9),
  over 4N images; the two are timed in alternation, an eighth of the images at a time, so that a
  change in the machine's load hits both sides (the per-round ratios show how noisy the machine is);
- crops/s and achieved GFLOP/s (VGG16: about 15.5 GFLOP per 224x224 crop);
- peak resident memory of a whole run at N and 4N images (separate processes): it must not grow.
Uses the default source model (vgg16_imagenet) with the weights `make setup` fetched.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared" / "datasets"
GFLOP_PER_CROP = 15.5


def real_images(count: int) -> tuple[Path, pd.DataFrame]:
    """The first `count` JPEGs of the shared mini datasets, as an image index."""
    paths = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if len(paths) < count:
        raise SystemExit(f"only {len(paths)} images under {SHARED}, {count} asked")
    relative = [p.relative_to(SHARED).as_posix() for p in paths[:count]]
    return SHARED, pd.DataFrame({"image_id": relative, "path": relative})


def _setup(count: int):
    from kedro.config import OmegaConfigLoader

    from cnn_feature_behavior.extraction.source_models import (
        available_layers,
        load_backbone,
        source_model_spec,
    )

    params = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="local"
    )["parameters"]
    source_models = params["source_models"]
    spec = source_model_spec("vgg16_imagenet", source_models)
    backbone = load_backbone("vgg16_imagenet", source_models, project_root=PROJECT_ROOT)
    layers = available_layers(backbone, "vgg16_imagenet", spec)
    raw, index = real_images(count)
    return params["feature_extraction"], spec, backbone, layers, raw, index


def pipeline_seconds(
    index, raw, backbone, spec, layers, settings, crops, batch_size, shard_size
) -> tuple[float, int]:
    """Wall time of the whole extraction (plan, stream, shard writes) and the feature count."""
    from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
    from cnn_feature_behavior.extraction.stream import (
        ExtractionSettings,
        SourceModel,
        plan_embedding,
    )

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        plan, manifest = plan_embedding(
            index,
            raw,
            SourceModel("vgg16_imagenet", spec, backbone, tuple(layers)),
            ExtractionSettings.from_params(
                crops, {**settings, "batch_size": batch_size, "shard_size": shard_size}
            ),
        )
        ShardedEmbeddingDataset(path=folder).save(plan)
        return time.perf_counter() - start, len(manifest)


def bare_seconds(index, raw, extractor, spec, settings, crops, batch_size) -> float:
    """Wall time of the model's forward passes alone, on the same crops decoded beforehand."""
    from cnn_feature_behavior.extraction.crops import image_crops
    from cnn_feature_behavior.extraction.source_models import preprocess
    from cnn_feature_behavior.extraction.stream import CropStream, ExtractionSettings

    stream = CropStream(
        extractor,
        spec,
        {},
        ExtractionSettings.from_params(
            crops, {**settings, "batch_size": batch_size, "decode_workers": 1}
        ),
    )
    per_image = [
        image_crops(raw / p, settings["resize"], settings["crop"], crops) for p in index["path"]
    ]
    full = stream.images_per_batch * crops
    inputs = []
    for i in range(0, len(per_image), stream.images_per_batch):
        batch = preprocess(np.concatenate(per_image[i : i + stream.images_per_batch]), spec)
        inputs.append(
            np.concatenate([batch, np.zeros((full - len(batch), *batch.shape[1:]), batch.dtype)])
        )
    start = time.perf_counter()
    for x in inputs:
        stream.extractor.predict_on_batch(x)
    return time.perf_counter() - start


def memory_child(count: int, crops: int, batch_size: int, shard_size: int) -> dict:
    """Peak RSS of one whole extraction of `count` images, in a process of its own."""
    settings, spec, backbone, layers, raw, index = _setup(count)
    pipeline_seconds(index, raw, backbone, spec, layers, settings, crops, batch_size, shard_size)
    return {
        "images": count,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def speed_child(count: int, crops: int, batch_size: int, shard_size: int, rounds: int) -> dict:
    """Pipeline and bare forward pass timed in alternation, round by round, over `count` images.

    The machine may be shared: alternating every few seconds makes both sides see the same load.
    """
    from cnn_feature_behavior.extraction.stream import build_extractor

    settings, spec, backbone, layers, raw, index = _setup(count)
    args = (backbone, spec, layers, settings, crops, batch_size)
    # The bare side gets one model, traced before any timing: the pipeline's own model building
    # and tracing count against the pipeline.
    extractor = build_extractor(backbone, layers)
    bare_args = (extractor, spec, settings, crops, batch_size)
    bare_seconds(index.iloc[:1], raw, *bare_args)
    pipeline_total = bare_total = 0.0
    round_ratios = []
    features = 0
    for number, part in enumerate(np.array_split(np.arange(count), rounds)):
        chunk = index.iloc[part]
        bare = bare_seconds(chunk, raw, *bare_args) if number % 2 else 0.0
        seconds, features = pipeline_seconds(chunk, raw, *args, shard_size)
        if not number % 2:
            bare = bare_seconds(chunk, raw, *bare_args)
        pipeline_total += seconds
        bare_total += bare
        round_ratios.append(bare / seconds)
    return {
        "images": count,
        "pipeline_s": pipeline_total,
        "bare_s": bare_total,
        "features": features,
        "round_ratios": round_ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="N; speed is measured on 4N images")
    parser.add_argument("--crops", type=int, default=1, choices=[1, 10])
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=8, help="alternations of pipeline and bare timing"
    )
    parser.add_argument("--child", choices=["memory", "speed"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "memory":
        print(json.dumps(memory_child(args.count, args.crops, args.batch_size, args.shard_size)))
        return
    if args.child == "speed":
        print(
            json.dumps(
                speed_child(args.count, args.crops, args.batch_size, args.shard_size, args.rounds)
            )
        )
        return

    def run_child(kind: str, count: int) -> dict:
        command = [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--count",
            str(count),
            "--crops",
            str(args.crops),
            "--batch-size",
            str(args.batch_size),
            "--shard-size",
            str(args.shard_size),
            "--rounds",
            str(args.rounds),
        ]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    load_before = os.getloadavg()
    memory = {count: run_child("memory", count) for count in (args.images, 4 * args.images)}
    speed = run_child("speed", 4 * args.images)
    load_after = os.getloadavg()

    pipeline_ips = speed["images"] / speed["pipeline_s"]
    bare_ips = speed["images"] / speed["bare_s"]
    crops_per_s = pipeline_ips * args.crops
    print(
        f"command: python benchmarks/bench_feature_extraction.py --images {args.images} --crops {args.crops} "
        f"--batch-size {args.batch_size} --shard-size {args.shard_size} --rounds {args.rounds}"
    )
    print(
        f"vgg16_imagenet, {speed['features']} features, {args.crops} crop(s)/image, batches of {args.batch_size} crops"
    )
    print(
        f"pipeline: {pipeline_ips:.2f} images/s over {speed['images']} images ({speed['pipeline_s']:.1f} s)"
    )
    print(
        f"bare model forward on the same crops in memory: {bare_ips:.2f} images/s ({speed['bare_s']:.1f} s)"
    )
    print(
        f"ratio pipeline / bare: {pipeline_ips / bare_ips:.3f} over all rounds, median of rounds "
        f"{float(np.median(speed['round_ratios'])):.3f} (target >= 0.9); per round: "
        + ", ".join(f"{r:.2f}" for r in speed["round_ratios"])
    )
    print(
        f"pipeline crops/s: {crops_per_s:.2f}; achieved {crops_per_s * GFLOP_PER_CROP:.1f} GFLOP/s "
        f"({GFLOP_PER_CROP} GFLOP per crop)"
    )
    for count, run in memory.items():
        print(f"peak RSS, whole run of {count} images: {run['peak_rss_mib']:.0f} MiB")
    growth = memory[4 * args.images]["peak_rss_mib"] / memory[args.images]["peak_rss_mib"]
    print(f"peak RSS ratio 4N / N: {growth:.3f} (flat means memory does not grow with the images)")
    print(
        "load average (1, 5, 15 min) before: "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after: "
        + ", ".join(f"{x:.2f}" for x in load_after)
        + f" on {os.cpu_count()} CPUs (a shared machine slows the two sides unevenly: see the per-round ratios)"
    )


if __name__ == "__main__":
    main()
