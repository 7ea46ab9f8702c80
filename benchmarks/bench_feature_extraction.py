"""Benchmark of the feature_extraction pipeline on real images from ../shared/datasets.

    python benchmarks/bench_feature_extraction.py [--images 32] [--crops 1] [--batch-size 10] [--rounds 8]
        [--source-model vgg16_imagenet]

Prints, measured in this one run:
- pipeline images/s (plan, decode once, crop, forward, crop mean, shard writes) against the
  bare model's forward pass on the same crops already in memory, and their ratio (target >= 0.9),
  over 4N images; the two are timed in alternation, an eighth of the images at a time, so that a
  change in the machine's load hits both sides (the per-round ratios show how noisy the machine is);
- crops/s and achieved GFLOP/s (VGG16: about 15.5 GFLOP per 224x224 crop);
- peak resident memory of a whole run at N and 4N images (separate processes): it must not grow.
Uses the default source model (vgg16_imagenet) with the weights `make setup` fetched, or
`--source-model`; crops follow the model's input size (`crops.crop_geometry`).
benchmarks/bench_source_models.py compares two source models with this script's speed run.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from load_average import load_average_line

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared" / "datasets"
# Per 224x224 crop: VGG16 (conv layers: 15.3; fc6 and fc7 add 0.1) and EfficientNet-Lite0 (0.4).
GFLOP_PER_CROP = {"vgg16_imagenet": 15.5, "efficientnet_lite0_imagenet": 0.4}


def real_images(count: int) -> tuple[Path, pd.DataFrame]:
    """The first `count` JPEGs of the shared mini datasets, as an image index; past the last
    one (700) the files are listed again under new image ids (`<path>#<k>`), each decoded again,
    so that a fast model's runs can be as long as a shard of a real dataset."""
    paths = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not paths:
        raise SystemExit(f"no JPEG images under {SHARED}")
    relative = [paths[k % len(paths)].relative_to(SHARED).as_posix() for k in range(count)]
    image_ids = [
        path if k < len(paths) else f"{path}#{k // len(paths)}" for k, path in enumerate(relative)
    ]
    return SHARED, pd.DataFrame({"image_id": image_ids, "path": relative})


def _setup(count: int, source_model: str = "vgg16_imagenet", decode_workers: int | None = None):
    from kedro.config import OmegaConfigLoader

    from cnn_feature_behavior.extraction.crops import crop_geometry
    from cnn_feature_behavior.extraction.source_models import (
        available_layers,
        load_backbone,
        source_model_spec,
    )

    params = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="local"
    )["parameters"]
    source_models = params["source_models"]
    spec = source_model_spec(source_model, source_models)
    backbone = load_backbone(source_model, source_models, project_root=PROJECT_ROOT)
    layers = available_layers(backbone, source_model, spec)
    raw, index = real_images(count)
    settings = dict(params["feature_extraction"])
    if decode_workers is not None:
        settings["decode_workers"] = decode_workers
    settings["resize"], settings["crop"] = crop_geometry(
        backbone.inputs[0].shape[1], settings["resize"], settings["crop"]
    )
    return settings, spec, backbone, layers, raw, index


@dataclass(frozen=True)
class Extraction:
    """What one timed pipeline run extracts with: the prepared model (`_setup`) and its batching."""

    backbone: Any
    spec: Any
    layers: tuple[str, ...]
    settings: dict
    crops: int
    batch_size: int
    shard_size: int


@contextmanager
def timed_shard_writes(per_run: list[float]):
    """Add the seconds spent in `embedding_store.write_shard` to per_run[0] while open."""
    from cnn_feature_behavior.extraction import embedding_store

    original = embedding_store.write_shard

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            per_run[0] += time.perf_counter() - start

    embedding_store.write_shard = timed
    try:
        yield
    finally:
        embedding_store.write_shard = original


def pipeline_seconds(
    index, raw, extraction: Extraction, per_run: list[float] | None = None
) -> tuple[float, int]:
    """Wall time of the whole extraction (plan, stream, shard writes) and the feature count.

    With `per_run`, the seconds of this run's costs that do not grow with its images (planning,
    writing the shard: one per run here, of every feature column) are added to per_run[0].
    """
    from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
    from cnn_feature_behavior.extraction.stream import (
        ExtractionSettings,
        SourceModel,
        plan_embedding,
    )

    per_run = [0.0] if per_run is None else per_run
    with tempfile.TemporaryDirectory() as folder, timed_shard_writes(per_run):
        start = time.perf_counter()
        plan, manifest = plan_embedding(
            index,
            raw,
            SourceModel(
                "benchmark", extraction.spec, extraction.backbone, tuple(extraction.layers)
            ),
            ExtractionSettings.from_params(
                extraction.crops,
                {
                    **extraction.settings,
                    "batch_size": extraction.batch_size,
                    "shard_size": extraction.shard_size,
                },
            ),
        )
        per_run[0] += time.perf_counter() - start
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


def memory_child(
    count: int, crops: int, batch_size: int, shard_size: int, source_model: str, workers: int | None
) -> dict:
    """Peak RSS of one whole extraction of `count` images, in a process of its own."""
    settings, spec, backbone, layers, raw, index = _setup(count, source_model, workers)
    pipeline_seconds(
        index,
        raw,
        Extraction(backbone, spec, tuple(layers), settings, crops, batch_size, shard_size),
    )
    return {
        "images": count,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def speed_child(
    count: int,
    crops: int,
    batch_size: int,
    shard_size: int,
    rounds: int,
    source_model: str,
    workers: int | None,
    warm: bool = False,
) -> dict:
    """Pipeline and bare forward pass timed in alternation, round by round, over `count` images.

    The machine may be shared: alternating every few seconds makes both sides see the same load.
    """
    from cnn_feature_behavior.extraction.stream import build_extractor

    settings, spec, backbone, layers, raw, index = _setup(count, source_model, workers)
    extraction = Extraction(backbone, spec, tuple(layers), settings, crops, batch_size, shard_size)
    # The bare side gets one model, traced before any timing: the pipeline's own model building
    # and tracing count against the pipeline, unless `warm` (steady state: one untimed pipeline
    # run on one image first, its seconds reported as `warm_up_s`).
    extractor = build_extractor(backbone, layers)
    bare_args = (extractor, spec, settings, crops, batch_size)
    bare_seconds(index.iloc[:1], raw, *bare_args)
    warm_up = 0.0
    if warm:
        warm_up = pipeline_seconds(index.iloc[:1], raw, extraction)[0]
    pipeline_total = bare_total = 0.0
    per_run = [0.0]
    round_ratios = []
    features = 0
    for number, part in enumerate(np.array_split(np.arange(count), rounds)):
        chunk = index.iloc[part]
        bare = bare_seconds(chunk, raw, *bare_args) if number % 2 else 0.0
        seconds, features = pipeline_seconds(chunk, raw, extraction, per_run)
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
        "warm_up_s": warm_up,
        "per_run_s": per_run[0],
    }


def run_child(
    kind: str, count: int, args: argparse.Namespace, source_model: str, warm: bool = False
) -> dict:
    """One `--child` measurement of this script in a process of its own: its last line, JSON.
    `args` gives crops, batch_size, shard_size, rounds and decode_workers."""
    command = [
        sys.executable, __file__, "--child", kind, "--count", str(count),
        "--crops", str(args.crops), "--batch-size", str(args.batch_size),
        "--shard-size", str(args.shard_size), "--rounds", str(args.rounds),
        "--source-model", source_model,
    ]  # fmt: skip
    command += ["--warm"] if warm else []
    if args.decode_workers is not None:
        command += ["--decode-workers", str(args.decode_workers)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="N; speed is measured on 4N images")
    parser.add_argument("--crops", type=int, default=1, choices=[1, 10])
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=8, help="alternations of pipeline and bare timing"
    )
    parser.add_argument("--source-model", default="vgg16_imagenet")
    parser.add_argument(
        "--decode-workers", type=int, help="decoding threads (default: feature_extraction's)"
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="time the pipeline in steady state: one untimed run first (model tracing)",
    )
    parser.add_argument("--child", choices=["memory", "speed"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "memory":
        print(
            json.dumps(
                memory_child(
                    args.count,
                    args.crops,
                    args.batch_size,
                    args.shard_size,
                    args.source_model,
                    args.decode_workers,
                )
            )
        )
        return
    if args.child == "speed":
        print(
            json.dumps(
                speed_child(
                    args.count,
                    args.crops,
                    args.batch_size,
                    args.shard_size,
                    args.rounds,
                    args.source_model,
                    args.decode_workers,
                    args.warm,
                )
            )
        )
        return

    load_before = os.getloadavg()
    memory = {
        count: run_child("memory", count, args, args.source_model)
        for count in (args.images, 4 * args.images)
    }
    speed = run_child("speed", 4 * args.images, args, args.source_model)
    load_after = os.getloadavg()

    pipeline_ips = speed["images"] / speed["pipeline_s"]
    bare_ips = speed["images"] / speed["bare_s"]
    crops_per_s = pipeline_ips * args.crops
    print(
        f"command: python benchmarks/bench_feature_extraction.py --images {args.images} --crops {args.crops} "
        f"--batch-size {args.batch_size} --shard-size {args.shard_size} --rounds {args.rounds} "
        f"--source-model {args.source_model}"
    )
    print(
        f"{args.source_model}, {speed['features']} features, {args.crops} crop(s)/image, "
        f"batches of {args.batch_size} crops"
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
    gflop = GFLOP_PER_CROP.get(args.source_model)
    print(
        f"pipeline crops/s: {crops_per_s:.2f}"
        + (
            f"; achieved {crops_per_s * gflop:.1f} GFLOP/s ({gflop} GFLOP per crop)"
            if gflop
            else ""
        )
    )
    for count, run in memory.items():
        print(f"peak RSS, whole run of {count} images: {run['peak_rss_mib']:.0f} MiB")
    growth = memory[4 * args.images]["peak_rss_mib"] / memory[args.images]["peak_rss_mib"]
    print(f"peak RSS ratio 4N / N: {growth:.3f} (flat means memory does not grow with the images)")
    print(
        load_average_line(
            load_before,
            load_after,
            "(a shared machine slows the two sides unevenly: see the per-round ratios)",
        )
    )


if __name__ == "__main__":
    main()
