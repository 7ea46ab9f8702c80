"""Benchmark: extraction images/s and the pipeline / bare-model ratio on the device TF uses.

    python benchmarks/bench_extraction_device.py [--images 128] [--crops 1] [--batch-size auto]
                                                 [--decode-workers auto] [--rounds 4]

Ready for a GPU machine: install the GPU build first (`make setup EXTRAS=test,gpu`, README: GPU).
Prints, measured in this one run: the devices TensorFlow sees and where VGG16's forward pass
ran; decode + crop throughput alone (the CPU work in front of the model, `--decode-workers`
threads); the pipeline (plan, decode once, crop, forward, crop mean, shard writes) and the bare
forward pass on the same crops already in memory, timed in alternation over `--rounds` rounds,
with their images/s and ratio (target >= 0.9); and the load average. The batch size defaults to
the documented one per device: 10 crops on a CPU, 64 on a GPU (parameters_feature_extraction.yml).
Uses the default source model (vgg16_imagenet) with the weights `make setup` fetched.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from load_average import load_average_line

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_feature_extraction import (  # noqa: E402
    Extraction,
    _setup,
    bare_seconds,
    pipeline_seconds,
)

CPU_BATCH, GPU_BATCH = 10, 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--crops", type=int, default=1, choices=[1, 10])
    parser.add_argument("--batch-size", default="auto", help="crops per forward pass")
    parser.add_argument("--decode-workers", default="auto", help="decode threads")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    import tensorflow as tf

    from cnn_feature_behavior.extraction.crops import image_crops
    from cnn_feature_behavior.extraction.stream import build_extractor

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:  # allocate as needed, beside anything else on the card
        tf.config.experimental.set_memory_growth(gpu, True)
    batch_size = (
        int(args.batch_size) if args.batch_size != "auto" else GPU_BATCH if gpus else CPU_BATCH
    )
    workers = (
        int(args.decode_workers)
        if args.decode_workers != "auto"
        else max(2, (os.cpu_count() or 2) - 1)
        if gpus
        else 2
    )
    settings, spec, backbone, layers, raw, index = _setup(args.images)
    settings = {**settings, "decode_workers": workers}
    extractor = build_extractor(backbone, layers)
    # Keras runs the model on the first GPU TensorFlow sees, else on the CPU: where a tensor lands.
    placed = tf.constant([1.0]).device

    load_before = os.getloadavg()
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(
            pool.map(
                lambda p: image_crops(raw / p, settings["resize"], settings["crop"], args.crops),
                index["path"],
            )
        )
    decode_ips = len(index) / (time.perf_counter() - start)

    bare_args = (extractor, spec, settings, args.crops, batch_size)
    extraction = Extraction(backbone, spec, tuple(layers), settings, args.crops, batch_size, 64)
    bare_seconds(index.iloc[:1], raw, *bare_args)  # traced before timing
    pipeline_seconds(index.iloc[:1], raw, extraction)
    pipeline_total = bare_total = 0.0
    ratios = []
    for number, part in enumerate(np.array_split(np.arange(len(index)), args.rounds)):
        chunk = index.iloc[part]
        bare = bare_seconds(chunk, raw, *bare_args) if number % 2 else 0.0
        seconds, features = pipeline_seconds(chunk, raw, extraction)
        if not number % 2:
            bare = bare_seconds(chunk, raw, *bare_args)
        pipeline_total, bare_total = pipeline_total + seconds, bare_total + bare
        ratios.append(bare / seconds)
    load_after = os.getloadavg()

    n = len(index)
    print(
        f"command: python benchmarks/bench_extraction_device.py --images {args.images} --crops "
        f"{args.crops} --batch-size {args.batch_size} --decode-workers {args.decode_workers} "
        f"--rounds {args.rounds}"
    )
    print(
        f"TensorFlow {tf.__version__}; devices: {[d.name for d in tf.config.list_physical_devices()]}"
    )
    print(f"the forward pass runs on: {placed} ({len(gpus)} GPU(s) visible)")
    print(
        f"vgg16_imagenet, {features} features, {args.crops} crop(s)/image, batches of "
        f"{batch_size} crops, {workers} decode threads, {n} images"
    )
    print(f"decode + crop alone: {decode_ips:.1f} images/s")
    print(f"pipeline: {n / pipeline_total:.2f} images/s ({pipeline_total:.1f} s)")
    print(f"bare forward pass on the same crops in memory: {n / bare_total:.2f} images/s")
    print(
        f"ratio pipeline / bare: {bare_total / pipeline_total:.3f} (target >= 0.9); per round: "
        + ", ".join(f"{r:.2f}" for r in ratios)
    )
    print(load_average_line(load_before, load_after))


if __name__ == "__main__":
    main()
