"""Benchmark of the 2-D embedding maps (transfer/maps.py) at their default size.

    python benchmarks/bench_maps.py
    python benchmarks/bench_maps.py --threads 1 2      # OpenMP / BLAS thread caps to compare

Prints, in one run: the time of one map (standardisation, PCA to 50 components, Barnes-Hut
t-SNE, 1,000 iterations) of 2,000 images x 4,224 features (VGG16's 13 conv layers, 102 classes),
split into PCA and t-SNE, for each thread cap; then the whole `embedding_maps` call for the
default embeddings (conv3_3, conv5_3, full network, FNE) and how well the map keeps the classes
apart (5-nearest-neighbour accuracy in 2-D; chance is 1/102). The load average is printed with
the figures: on a shared machine they are upper bounds.

Synthetic images: a class centre plus noise in a 96-dimensional latent space, seen through a
random ReLU layer per conv layer (deeper layers see more of the class structure).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from cnn_feature_behavior.transfer import maps
from cnn_feature_behavior.transfer.embeddings import standardise
from cnn_feature_behavior.transfer.settings import MapSettings

VGG16_CONV = {
    "conv1_1": 64, "conv1_2": 64, "conv2_1": 128, "conv2_2": 128, "conv3_1": 256, "conv3_2": 256,
    "conv3_3": 256, "conv4_1": 512, "conv4_2": 512, "conv4_3": 512, "conv5_1": 512,
    "conv5_2": 512, "conv5_3": 512,
}  # fmt: skip


def synthetic(n_images: int, n_classes: int, seed: int = 0):
    """(values, labels, feature layers) of a VGG16-conv-shaped embedding."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_images)
    latent_dim = 96
    centres = rng.standard_normal((n_classes, latent_dim)).astype(np.float32)
    latent = centres[labels] * 0.9 + rng.standard_normal((n_images, latent_dim), np.float32)
    blocks, layers = [], []
    for depth, (layer, size) in enumerate(VGG16_CONV.items()):
        mix = (depth + 1) / len(VGG16_CONV)
        weights = rng.standard_normal((latent_dim, size)).astype(np.float32) * mix
        noise = rng.standard_normal((n_images, size), np.float32) * 3.0
        blocks.append(np.maximum(latent @ weights + noise, 0.0))
        layers += [layer] * size
    return np.hstack(blocks), labels, np.array(layers)


def knn_accuracy(xy: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 5-nearest-neighbour accuracy in the map."""
    knn = KNeighborsClassifier(n_neighbors=6).fit(xy, labels)
    neighbours = knn.kneighbors(xy, return_distance=False)[:, 1:]
    votes = labels[neighbours]
    predicted = np.array([np.bincount(row).argmax() for row in votes])
    return float((predicted == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=102)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()}")
    values, labels, layers = synthetic(args.images, args.classes)
    print(f"{values.shape[0]:,} images x {values.shape[1]:,} features, {args.classes} classes")
    full = standardise(values)
    for threads in args.threads:
        with threadpool_limits(limits=threads):
            start = time.perf_counter()
            reduced = PCA(n_components=50, svd_solver="randomized", random_state=0).fit_transform(
                full
            )
            pca = time.perf_counter() - start
            start = time.perf_counter()
            xy = TSNE(
                perplexity=30, init="pca", learning_rate="auto", max_iter=1000, random_state=0
            ).fit_transform(reduced)
            tsne = time.perf_counter() - start
        print(
            f"threads {threads}: PCA {pca:.1f} s, t-SNE {tsne:.1f} s, one map {pca + tsne:.1f} s; "
            f"5-NN accuracy in 2-D {knn_accuracy(xy, labels):.3f}; load {os.getloadavg()}"
        )
    settings = MapSettings(max_images=args.images, threads=args.threads[0])
    start = time.perf_counter()
    table = maps.embedding_maps(
        values,
        layers,
        labels,
        [f"c{k}" for k in range(args.classes)],
        [f"img_{i}" for i in range(len(labels))],
        settings,
        known_layers=list(VGG16_CONV),
        dataset="synthetic",
        source_model="vgg16",
    )
    total = time.perf_counter() - start
    print(
        f"embedding_maps, {list(settings.embeddings)}, threads {settings.threads}: {total:.1f} s "
        f"({total / len(settings.embeddings):.1f} s per map); load {os.getloadavg()}"
    )
    for name, rows in table.groupby("embedding", sort=False):
        accuracy = knn_accuracy(rows[["x", "y"]].to_numpy(), rows["label"].to_numpy())
        print(f"  {name:12s} 5-NN accuracy in 2-D {accuracy:.3f}")


if __name__ == "__main__":
    main()
