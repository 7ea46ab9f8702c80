"""Out-of-core statistics benchmark (issue 11): feature blocks read from embedding shards on disk.

    python benchmarks/bench_out_of_core.py write --folder /tmp/ooc    # 12.4 GB of shards, once
    python benchmarks/bench_out_of_core.py run --folder /tmp/ooc      # threads, then Dask
    python benchmarks/bench_out_of_core.py run --folder /tmp/ooc --executor local
    rm -r /tmp/ooc                                                    # afterwards

`write` makes a synthetic embedding of 250,000 images x 12,416 features x 1,000 classes
(ReLU'd normal activations, a class-dependent shift on a fifth of the features) in the real
shard format, written by the project's own ShardedEmbeddingDataset (`--shard-size` images per
shard). `run` computes, as the dks pipeline's compute_statistics node does, binned DKS (100
bins) under the real labels and one randomised repetition from one read of each feature block,
then the davg curve and t+ / t-, and prints the wall time against the 5-minute target, the peak
memory of every process (this one with threads; each worker with Dask) against 3 GiB, and the
time spent reading blocks. `--with-histograms` adds KL / Bhattacharyya (the node computes them
too). No process holds the (images x features) matrix: the 12.4 GB are more than half of this
machine's memory. The machine is shared: os.getloadavg() is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from cnn_feature_behavior.extraction.embedding_store import (
    EmbeddingPlan,
    ShardedEmbeddingDataset,
    ShardSpec,
)
from cnn_feature_behavior.statistics import calibration
from cnn_feature_behavior.statistics.blocks import (
    ShardColumnReader,
    StatisticSettings,
    feature_block_statistics,
)
from cnn_feature_behavior.statistics.dks import check_labellings

GIB = 2**30
TARGET_SECONDS, TARGET_PEAK_GIB = 300.0, 3.0
N_IMAGES, N_FEATURES, N_CLASSES = 250_000, 12_416, 1_000


def synthetic_labels(n_images: int, n_classes: int) -> np.ndarray:
    return np.random.default_rng(0).permutation(np.arange(n_images) % n_classes)


def write(folder: Path, n_images: int, n_features: int, n_classes: int, shard_size: int) -> None:
    labels = synthetic_labels(n_images, n_classes)
    ids = [f"img{i:07d}" for i in range(n_images)]
    columns = tuple(f"layer{j // 1024}/n{j % 1024}" for j in range(n_features))
    shards = tuple(
        ShardSpec(f"shard-{k:05d}", tuple(ids[start : start + shard_size]))
        for k, start in enumerate(range(0, n_images, shard_size))
    )

    def compute(todo):
        for shard in todo:
            start = int(shard.name.split("-")[1]) * shard_size
            rows = slice(start, start + len(shard.image_ids))
            rng = np.random.default_rng(start)
            # Fortran order: each feature column is contiguous, as the writer turns it into Arrow.
            values = np.empty((len(shard.image_ids), n_features), np.float32, order="F")
            shift = (labels[rows] % 7 == 0).astype(np.float32)
            for f in range(n_features):
                column = rng.standard_normal(len(shard.image_ids), dtype=np.float32)
                if f % 5 == 0:
                    column += shift
                values[:, f] = np.maximum(column, 0)
            print(f"  {shard.name} ({len(shard.image_ids)} images)", flush=True)
            yield shard, values

    started = time.perf_counter()
    ShardedEmbeddingDataset(str(folder / "embedding")).save(
        EmbeddingPlan(fingerprint="bench", columns=columns, shards=shards, compute=compute)
    )
    size = sum(p.stat().st_size for p in (folder / "embedding").glob("*.parquet"))
    np.save(folder / "labels.npy", labels)
    print(
        f"wrote {len(shards)} shards, {size / 1e9:.1f} GB, in {time.perf_counter() - started:.0f} s"
    )


def peak_rss_bytes() -> int:
    """This process's resident high-water mark (VmHWM) since it started or was last reset."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def davg_thresholds(real: np.ndarray, randomised: np.ndarray, n_classes: int):
    sorted_real, sorted_randomised = (
        np.sort(m.astype(np.float64).ravel()) for m in (real, randomised)
    )
    thresholds = []
    for side in calibration.SIDES:
        x = calibration.threshold_grid(side)
        curve = calibration.davg(
            calibration.count_beyond(sorted_real, x, side),
            calibration.count_beyond(sorted_randomised, x, side),
            n_classes,
        )
        thresholds.append(calibration.best_threshold(x, curve)[0])
    return thresholds


def run(folder: Path, executor: str, block_features: int | None, with_histograms: bool) -> None:
    from distributed import Client, LocalCluster

    labels = np.load(folder / "labels.npy")
    n_classes = int(labels.max()) + 1
    (permuted,) = calibration.permuted_labels(labels, 1, seed=2018)
    label_sets, sizes = check_labellings([labels, permuted], [str(c) for c in range(n_classes)])
    settings = StatisticSettings(bins=100, histogram_bins=100 if with_histograms else None)
    reader = ShardColumnReader(folder / "embedding")
    print(
        f"\n== executor {executor}: {label_sets.shape[1]:,} images x {len(reader.columns):,} "
        f"features x {n_classes:,} classes, binned DKS + 1 randomised repetition"
        f"{' + KL / Bhattacharyya' if with_histograms else ''}; load average before "
        f"{tuple(round(v, 2) for v in os.getloadavg())}"
    )
    Path("/proc/self/clear_refs").write_text("5")  # restart this process's high-water mark
    started, cpu_started = time.perf_counter(), time.process_time()
    if executor == "local":
        result = feature_block_statistics(
            reader, label_sets, sizes, settings, block_features=block_features, workers=2
        )
        worker_peaks, worker_cpu = {}, {}
    else:
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                memory_limit=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            cluster_up = time.perf_counter()
            result = feature_block_statistics(
                reader, label_sets, sizes, settings, block_features=block_features, client=client
            )
            worker_peaks = client.run(peak_rss_bytes)
            worker_cpu = client.run(time.process_time)
        print(f"  cluster start-up {cluster_up - started:.1f} s (included in the wall time)")
    computed = time.perf_counter()
    t_plus, t_minus = davg_thresholds(result.dks[0], result.dks[1], n_classes)
    wall = time.perf_counter() - started
    peaks = {f"this process ({os.getpid()})": peak_rss_bytes(), **worker_peaks}
    print(
        f"  {result.n_blocks} blocks of {result.block_features} features; statistics "
        f"{computed - started:.1f} s, davg + thresholds {wall - (computed - started):.1f} s"
    )
    print(
        f"  time reading blocks {result.read_seconds:.1f} s, computing {result.compute_seconds:.1f} s "
        f"(summed over {max(len(result.workers), 1)} process(es) x threads; read share "
        f"{result.read_seconds / max(result.read_seconds + result.compute_seconds, 1e-9):.0%})"
    )
    print(
        f"  wall time {wall:.1f} s (target <= {TARGET_SECONDS:.0f} s): "
        f"{'PASS' if wall <= TARGET_SECONDS else 'FAIL'}; t+ = {t_plus:.3f}, t- = {t_minus:.3f}"
    )
    for process, peak in peaks.items():
        print(
            f"  peak memory {process}: {peak / GIB:.2f} GiB (target <= {TARGET_PEAK_GIB:.0f} GiB): "
            f"{'PASS' if peak <= TARGET_PEAK_GIB * GIB else 'FAIL'}"
        )
    cpu = {"this process": time.process_time() - cpu_started, **worker_cpu}
    # CPU seconds do not grow with other processes' load: their sum / 2 is the wall time on 2
    # idle cores (workers' figures include their start-up).
    print(
        "  CPU time: "
        + ", ".join(f"{process} {seconds:.0f} s" for process, seconds in cpu.items())
        + f"; total {sum(cpu.values()):.0f} s (/ 2 cores = {sum(cpu.values()) / 2:.0f} s)"
    )
    print(f"  load average after {tuple(round(v, 2) for v in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("write", "run"))
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--images", type=int, default=N_IMAGES)
    parser.add_argument("--features", type=int, default=N_FEATURES)
    parser.add_argument("--classes", type=int, default=N_CLASSES)
    parser.add_argument("--shard-size", type=int, default=8192, help="images per shard (write)")
    parser.add_argument("--executor", choices=("local", "dask", "both"), default="both")
    parser.add_argument("--block-features", type=int, default=None)
    parser.add_argument("--with-histograms", action="store_true")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    if args.mode == "write":
        write(args.folder, args.images, args.features, args.classes, args.shard_size)
        return
    for executor in ("local", "dask") if args.executor == "both" else (args.executor,):
        run(args.folder, executor, args.block_features, args.with_histograms)


if __name__ == "__main__":
    main()
