"""Benchmark: feature extraction on a 2-worker Dask LocalCluster against `executor: local`.

    python benchmarks/bench_dask_extraction.py [--images 48] [--crops 1] [--workers 2]

The same real images (the first `--images` of ../shared/datasets/caltech101-mini's object
classes, in index order), the real VGG16 default weights (data/06_models, `make setup`), the same
plan (shard size 8, batches of 10 crops), extracted twice through ShardedEmbeddingDataset: once in
this process, once on a LocalCluster of `--workers` single-threaded worker processes (one task per
shard, the workers load the model and write the shards). Prints, measured in this one run:
images/s of both, their ratio (on a 2-core machine the cluster cannot be faster: the ratio shows
its overhead: process start, a model per worker, both sharing the same cores), the cluster start
time on its own, whether the two embeddings are equal bit for bit, and the load average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from load_average import load_average_line

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CALTECH = PROJECT_ROOT.parent / "shared" / "datasets" / "caltech101-mini"


def caltech_index(count: int) -> pd.DataFrame:
    """The first `count` images of caltech101-mini's object classes, classes interleaved."""
    folder = CALTECH / "101_ObjectCategories"
    if not folder.is_dir():
        raise SystemExit(f"{folder} not found (the shared mini datasets are absent)")
    per_class = [
        sorted(p.relative_to(CALTECH).as_posix() for p in (folder / name).glob("*.jpg"))
        for name in sorted(p.name for p in folder.iterdir() if p.name != "BACKGROUND_Google")
    ]
    paths = [path for group in zip(*per_class) for path in group][:count]
    if len(paths) < count:
        raise SystemExit(f"only {len(paths)} images under {folder}, {count} asked")
    return pd.DataFrame({"image_id": [p.removesuffix(".jpg") for p in paths], "path": paths})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--crops", type=int, default=1, choices=[1, 10])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=8)
    args = parser.parse_args()

    from kedro.config import OmegaConfigLoader

    from cnn_feature_behavior.executors import dask_client
    from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
    from cnn_feature_behavior.extraction.source_models import (
        available_layers,
        load_backbone,
        source_model_spec,
    )
    from cnn_feature_behavior.extraction.stream import (
        ExtractionSettings,
        ModelSource,
        SourceModel,
        plan_embedding,
    )

    params = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="local"
    )["parameters"]
    source_models, settings = params["source_models"], params["feature_extraction"]
    spec = source_model_spec("vgg16_imagenet", source_models)
    backbone = load_backbone("vgg16_imagenet", source_models, project_root=PROJECT_ROOT)
    layers = available_layers(backbone, "vgg16_imagenet", spec)
    index = caltech_index(args.images)
    dask_params = {"scheduler_address": None, "n_workers": args.workers, "threads_per_worker": 1}
    os.chdir(PROJECT_ROOT)  # the weights paths in conf are relative to the project

    def extract(executor: str, folder: str) -> tuple[float, pd.DataFrame]:
        model = SourceModel(
            "vgg16_imagenet",
            spec,
            backbone,
            tuple(layers),
            ModelSource("vgg16_imagenet", source_models, str(PROJECT_ROOT)),
        )
        extraction = ExtractionSettings.from_params(
            args.crops, {**settings, "shard_size": args.shard_size}
        )
        plan, _ = plan_embedding(index, CALTECH, model, extraction, executor, dask_params)
        start = time.perf_counter()
        ShardedEmbeddingDataset(path=folder).save(plan)
        seconds = time.perf_counter() - start
        return seconds, ShardedEmbeddingDataset(path=folder).load()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        # Warm the local side as a worker warms itself (its first batch traces the model).
        extract("local", f"{folder}/warm_up")
        local_s, local = extract("local", f"{folder}/local")
        start = time.perf_counter()
        with dask_client("dask", dask_params) as client:
            client.wait_for_workers(args.workers)
        cluster_start_s = time.perf_counter() - start
        dask_s, remote = extract("dask", f"{folder}/dask")
    load_after = os.getloadavg()

    n = len(index)
    identical = local.index.equals(remote.index) and np.array_equal(
        local.to_numpy(), remote.to_numpy()
    )
    differing = int((local.to_numpy() != remote.to_numpy()).sum()) if not identical else 0
    print(
        f"command: python benchmarks/bench_dask_extraction.py --images {args.images} "
        f"--crops {args.crops} --workers {args.workers} --shard-size {args.shard_size}"
    )
    print(
        f"vgg16_imagenet, {local.shape[1]} features, {n} caltech101-mini images, {args.crops} "
        f"crop(s), shards of {args.shard_size}, batches of {settings['batch_size']} crops"
    )
    print(f"local: {n / local_s:.2f} images/s ({local_s:.1f} s)")
    print(
        f"dask LocalCluster, {args.workers} worker processes x 1 thread: {n / dask_s:.2f} images/s "
        f"({dask_s:.1f} s, including starting the cluster and loading the model on each worker)"
    )
    print(f"ratio dask / local images/s: {local_s / dask_s:.3f}")
    print(
        f"starting and stopping a {args.workers}-worker LocalCluster alone: {cluster_start_s:.1f} s"
    )
    print(
        "embeddings equal bit for bit: "
        + ("yes" if identical else f"NO ({differing} of {local.size} values differ)")
    )
    print(load_average_line(load_before, load_after))


if __name__ == "__main__":
    main()
