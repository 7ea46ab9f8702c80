"""Benchmark of the transfer evaluation (one repetition) on synthetic VGG16-shaped embeddings.

    python benchmarks/bench_transfer.py                  # digits-, flowers102-, caltech256-sized
    python benchmarks/bench_transfer.py --only flowers102

Prints, in one run: the whole evaluation's time (every layer, the full network, the FNE, the
DKS-ranked and random curves continuous and three-valued, C chosen on the training split) on a
digits-sized embedding (the default study: 600 images, 4,224 features, 10 classes, 300 train /
300 test; `kedro run` evaluates 3 seeded repetitions), a flowers102-sized one (8,189 images,
4,224 features in VGG16's 13 conv layers, 102 classes, 2,040 train / 6,149 test; target: within
5 minutes on 2 cores) and a caltech256-sized one (29,780 images, 12,416 features, 256 classes,
60 training images per class; a subset of its classes, CALTECH256_CLASSES below, every
feature); the time of each fit and of each C selection; and the default classifier beside
LinearSVC C = 1 (the FNE's public code) on the same matrices. The machine's load average is
printed with the figures: on a shared machine they are upper bounds.

Synthetic images: a class centre plus noise in a 96-dimensional latent space, seen through a
random ReLU layer per conv layer, so that features are non-negative, correlated and informative
to various degrees, as VGG16 spatial means are.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
import pandas as pd

from cnn_feature_behavior.transfer.classifier import (
    ClassifierSettings,
    accuracies,
    fit_linear_svc,
    fit_logistic_regression,
    holdout_split,
)
from cnn_feature_behavior.transfer.embeddings import Standardisation, fne_values
from cnn_feature_behavior.transfer.evaluation import TransferSettings, evaluate_split

VGG16_CONV = {
    "conv1_1": 64, "conv1_2": 64, "conv2_1": 128, "conv2_2": 128, "conv3_1": 256, "conv3_2": 256,
    "conv3_3": 256, "conv4_1": 512, "conv4_2": 512, "conv4_3": 512, "conv5_1": 512,
    "conv5_2": 512, "conv5_3": 512,
}  # fmt: skip
FC = {"fc6": 4096, "fc7": 4096}
SCALES = {
    # images, classes, training images per class (the rest is test), layers
    # digits: the default study's dataset (its seeded split trains on half of each class).
    "digits": (600, 10, 30, VGG16_CONV),
    "flowers102": (8189, 102, 20, VGG16_CONV),
    "caltech256": (29780, 256, 60, {**VGG16_CONV, **FC}),
}
# The whole caltech256-sized evaluation (15,360 training images, 12,416 features, 256 classes:
# 3.2 M weights, about 100 GFLOP per solver iteration, no row-space saving since n > d) would take
# hours on 2 cores; the benchmark runs a documented subset: the first CALTECH256_CLASSES classes
# with every feature, 60 training images each and the same share of test images.
CALTECH256_CLASSES = 64


def synthetic(n_images: int, n_classes: int, per_class: int, layer_sizes: dict, seed: int = 0):
    """(values, labels, is_train, layers): every class has per_class training images."""
    rng = np.random.default_rng(seed)
    train = np.repeat(np.arange(n_classes), per_class)
    test = rng.integers(0, n_classes, n_images - train.size)
    labels = np.concatenate([train, test])
    is_train = np.arange(n_images) < train.size
    latent_dim = 96
    centres = rng.standard_normal((n_classes, latent_dim)).astype(np.float32)
    latent = centres[labels] * 0.45 + rng.standard_normal((n_images, latent_dim), np.float32)
    blocks, layers = [], []
    for depth, (layer, size) in enumerate(layer_sizes.items()):
        # Deeper layers see more of the class structure, as in a trained network.
        mix = (depth + 1) / len(layer_sizes)
        weights = rng.standard_normal((latent_dim, size)).astype(np.float32) * mix
        noise = rng.standard_normal((n_images, size), np.float32) * 3.0
        blocks.append(np.maximum(latent @ weights + noise, 0.0))
        layers += [layer] * size
    return np.hstack(blocks), labels, is_train, np.array(layers)


def run(scale: str) -> None:
    n_images, n_classes, per_class, layer_sizes = SCALES[scale]
    if scale == "caltech256":
        n_images = round(n_images * CALTECH256_CLASSES / n_classes)
        n_classes = CALTECH256_CLASSES
        print(f"\n(caltech256: subset of {n_classes} of its 256 classes, {n_images} images)")
    values, labels, is_train, layers = synthetic(n_images, n_classes, per_class, layer_sizes)
    print(
        f"\n=== {scale}-sized: {n_images} images, {values.shape[1]} features in "
        f"{len(layer_sizes)} layers, {n_classes} classes, {int(is_train.sum())} train / "
        f"{int((~is_train).sum())} test; load average {os.getloadavg()}"
    )
    settings = TransferSettings()
    start, cpu_start = time.perf_counter(), time.process_time()
    evaluation = evaluate_split(
        values, labels, is_train, layers, [f"c{k}" for k in range(n_classes)], settings, seed=0
    )
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    seconds = evaluation.fitted["seconds"]
    print(
        f"whole evaluation: {total:.1f} s wall, {cpu:.1f} s CPU (this process, all threads) "
        f"({len(evaluation.results)} result rows, "
        f"{len(evaluation.timings.drop_duplicates(['selection_seconds']))} distinct fits); "
        f"standardisation + FNE {seconds['standardisation_and_fne']:.1f} s, training DKS + t+/t- "
        f"+ ranking {seconds['dks_ranking']:.1f} s, classifiers {seconds['classifiers']:.1f} s; "
        f"t+ = {evaluation.fitted['t_plus']:.3f}, t- = {evaluation.fitted['t_minus']:.3f}; "
        f"load average {os.getloadavg()}"
    )
    table = evaluation.results.merge(
        evaluation.timings, on=["embedding", "layer", "selection", "fraction", "n_features"]
    )
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(
            table[
                [
                    "embedding", "layer", "selection", "fraction", "n_features",
                    "regularisation_c", "accuracy", "mean_per_class_accuracy",
                    "selection_seconds", "fit_seconds", "n_iter",
                ]
            ].round(4).to_string(index=False)
        )  # fmt: skip

    print("\ndefault classifier (C chosen on train) beside LinearSVC C = 1, same matrices:")
    train_labels, test_labels = labels[is_train], labels[~is_train]
    standardisation = Standardisation.fit(values[is_train])
    default = ClassifierSettings()
    holdout = holdout_split(train_labels, default.holdout_fraction, 0)
    conv5_3 = layers == "conv5_3"
    for name, columns, three in (
        ("conv5_3", conv5_3, False),
        ("full_network", slice(None), False),
        ("fne", slice(None), True),
    ):
        train = standardisation.apply(values[is_train])[:, columns]
        test = standardisation.apply(values[~is_train])[:, columns]
        if three:
            train, test = fne_values(train), fne_values(test)
        for label in ("logistic_regression", "linear_svc C=1"):
            begin, cpu_begin = time.perf_counter(), time.process_time()
            if label == "logistic_regression":
                result = fit_logistic_regression(train, train_labels, test, default, holdout)
            else:
                result = fit_linear_svc(train, train_labels, test, default)
            took, took_cpu = time.perf_counter() - begin, time.process_time() - cpu_begin
            accuracy, per_class = accuracies(test_labels, result.predictions)
            print(
                f"  {name:12s} {label:20s} {took:7.1f} s wall, {took_cpu:7.1f} s CPU (selection "
                f"{result.selection_seconds:.1f} s, fit {result.fit_seconds:.1f} s)  "
                f"C = {result.regularisation_c:g}  accuracy {accuracy:.4f}  "
                f"mean per-class {per_class:.4f}  load {os.getloadavg()[0]:.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SCALES), default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()}")
    for scale in [args.only] if args.only else list(SCALES):
        run(scale)


if __name__ == "__main__":
    main()
