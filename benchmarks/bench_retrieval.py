"""Benchmark of one layer's retrieval score (transfer/retrieval.py) at ImageNet-validation size.

    python benchmarks/bench_retrieval.py                      # 50,000 images x 512 features
    python benchmarks/bench_retrieval.py --images 20000 --faiss

Times `embedding_score` for one 512-feature layer: the standardisation over every image, the
cosines of every pair (each computed once, blocked float32 products), each image's 10 nearest
others and mAP@10, leave-one-out. Prints

    RESULT retrieval images=50000 features=512 wall_s=<s> peak_gib=<g>

where peak_gib is the process's peak resident memory (the 0.1 GiB input included), and the
CPU seconds of every thread (on a shared machine, CPU / threads bounds the quiet wall time). With
`--faiss` (and faiss-cpu importable) the same neighbours by faiss's exact inner-product search
(IndexFlatIP, the dataset against itself, k + 1 to drop the query) are timed in the same run, on
the same threads, and their mAP@10 compared. The load average is printed with the figures: on a
shared machine they are upper bounds.

Synthetic images: 1,000 classes of 50, a class centre plus noise in a 64-dimensional latent
space through a random ReLU layer, so that neighbours are mostly of the same class (as in a
real deep layer: the running top-10 then fills early, which is the scan's favourable case).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
from load_average import load_average_line

from cnn_feature_behavior.transfer.embeddings import Standardisation
from cnn_feature_behavior.transfer.named_embeddings import LAYER, NamedEmbedding
from cnn_feature_behavior.transfer.nearest import Cosines
from cnn_feature_behavior.transfer.retrieval import (
    RetrievalSettings,
    average_precision_at_k,
    embedding_score,
)


def synthetic(n_images: int, n_features: int, n_classes: int, seed: int = 0):
    """(values, labels): a ReLU layer of class-structured latent vectors."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_images) % n_classes
    latent_dim = 64
    centres = rng.standard_normal((n_classes, latent_dim)).astype(np.float32)
    latent = centres[labels] + 1.5 * rng.standard_normal((n_images, latent_dim), np.float32)
    weights = rng.standard_normal((latent_dim, n_features)).astype(np.float32)
    noise = 2.0 * rng.standard_normal((n_images, n_features), np.float32)
    return np.maximum(latent @ weights + noise, 0.0), labels


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def faiss_map(values: np.ndarray, labels: np.ndarray, settings: RetrievalSettings) -> float:
    """mAP@k from faiss's exact inner-product search of the dataset against itself."""
    import faiss

    faiss.omp_set_num_threads(settings.workers or os.cpu_count() or 1)
    standardisation = Standardisation.fit(values)
    embedding = NamedEmbedding(LAYER, "layer", None)
    unit = Cosines.of(embedding.standardised(values, standardisation)).rows
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    _, found = index.search(unit, settings.k + 1)
    # The query itself is usually first; drop it wherever it is (ties may put it later).
    neighbours = np.array([[j for j in row if j != q][: settings.k] for q, row in enumerate(found)])
    relevant = labels[neighbours] == labels[:, None]
    n_relevant = np.bincount(labels)[labels] - 1
    return float(np.nanmean(average_precision_at_k(relevant, n_relevant)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None, help="threads (default: CPUs)")
    parser.add_argument("--faiss", action="store_true", help="also time faiss's exact search")
    args = parser.parse_args()

    values, labels = synthetic(args.images, args.features, args.classes)
    settings = RetrievalSettings(k=10, workers=args.workers)
    embedding = NamedEmbedding(LAYER, "layer", None)
    before = os.getloadavg()
    started, cpu = time.perf_counter(), time.process_time()
    standardisation = Standardisation.fit(values)
    row, _ = embedding_score(values, labels, standardisation, embedding, settings)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"mAP@10 {row['map_at_k']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]; "
        f"CPU {cpu:.1f} s on {settings.workers or os.cpu_count()} threads"
    )
    if args.faiss:
        started = time.perf_counter()
        faiss_value = faiss_map(values, labels, settings)
        faiss_wall = time.perf_counter() - started
        print(
            f"faiss IndexFlatIP: wall_s={faiss_wall:.1f} mAP@10 {faiss_value:.4f} "
            f"(this code / faiss wall: {wall / faiss_wall:.2f})"
        )
    print(load_average_line(before, os.getloadavg()))
    print(
        f"RESULT retrieval images={args.images} features={args.features} "
        f"wall_s={wall:.1f} peak_gib={peak_gib():.2f}"
    )


if __name__ == "__main__":
    main()
