"""One train/test split's transfer evaluation: every embedding, fitted on the training images only.

Compared (each standardised with the training images' statistics): each layer alone, the full
network (continuous), the FNE (three-valued), and curves of seeded random selections and of every
DKS ranking (features.RANKINGS) of the full network's features, continuous and three-valued.
Nothing fitted sees the test images: standardisation, DKS, t+ / t-, the rankings, the held-out
part that chooses C and the classifier itself use the training rows alone; test labels are only
read by the measures. C is chosen on a fit part of the training split whose own standardisation,
FNE and rankings are fitted on it alone (the held-out images are scored with them, as test images
are later), then the embedding is refitted on the whole training split with the whole split's.

Steps: `prepare` (standardisation, FNE, rankings of one part), `jobs.embedding_jobs` (the
feature set of each result row, on the fit part and on the training split),
`scheduling.fit_jobs` (the classifiers, one kind of matrix at a time, so that a kind's Gram
matrices are freed before the next kind's), `result_rows`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.statistics.dks import feature_range
from cnn_feature_behavior.transfer.classifier import FitResult, accuracies
from cnn_feature_behavior.transfer.embeddings import Standardisation
from cnn_feature_behavior.transfer.features import dks_ranking, random_order
from cnn_feature_behavior.transfer.jobs import (
    FULL_NETWORK,
    Job,
    Prepared,
    embedding_jobs,
)
from cnn_feature_behavior.transfer.scheduling import fit_jobs
from cnn_feature_behavior.transfer.settings import TransferSettings
from cnn_feature_behavior.transfer.splits import holdout_split

logger = logging.getLogger(__name__)

RESULT_COLUMNS = (
    "embedding",
    "layer",
    "selection",
    "fraction",
    "n_features",
    "classifier",
    "solver",
    "regularisation_c",
    "c_at_grid_edge",
    "converged",
    "n_train",
    "n_test",
    "accuracy",
    "mean_per_class_accuracy",
)


def evaluate_split(
    values: np.ndarray,
    labels: np.ndarray,
    is_train: np.ndarray,
    layers: Sequence[str],
    class_names: Sequence[str],
    settings: TransferSettings,
    seed: int | Sequence[int],
    feature_names: Sequence[str] | None = None,
) -> SplitEvaluation:
    """Every embedding's classifier fitted on the training rows and measured on the test rows.

    values: (images, features) float32; labels: (images,) ints 0..C-1; is_train: (images,) bool;
    layers: the layer of each feature. seed: this split's seed for the random selections and the
    held-out part of the training split.
    """
    inputs = check_inputs(values, labels, is_train, layers, class_names, feature_names)
    started = time.perf_counter()
    train_rows, test_rows = np.flatnonzero(inputs.is_train), np.flatnonzero(~inputs.is_train)
    fit_part, held_out = holdout_split(
        inputs.labels[train_rows], settings.c_selection.holdout_fraction, seed
    )
    fit = prepare(inputs, train_rows[fit_part], train_rows[held_out], settings)
    train = prepare(inputs, train_rows, test_rows, settings)
    prepared = time.perf_counter()
    shuffled = random_order(inputs.values.shape[1], seed)
    jobs = embedding_jobs(inputs.layers, fit, train, shuffled, settings)
    fitted = fit_jobs(jobs, fit, train, settings)
    results, timings = result_rows(jobs, fitted, train, inputs.labels[test_rows], settings)
    selections = {
        (job.row["selection"], job.row["fraction"]): (
            np.arange(inputs.values.shape[1]) if job.train_columns is None else job.train_columns
        )
        for job in jobs
        if job.row["selection"] is not None and job.kind == FULL_NETWORK
    }
    return SplitEvaluation(
        results=results,
        fitted={
            "mean": train.standardisation.mean,
            "scale": train.standardisation.scale,
            "fit_part_mean": fit.standardisation.mean,
            "t_plus": train.ranking.t_plus,
            "t_minus": train.ranking.t_minus,
            "dks": train.ranking.dks,
            "rankings": train.ranking.orders,
            "fit_part_rankings": fit.ranking.orders,
            "random": shuffled,
            "selections": selections,
            "holdout": (fit_part, held_out),
            "seconds": {
                "standardisation_and_dks_ranking": prepared - started,
                "classifiers": time.perf_counter() - prepared,
            },
        },
        timings=timings,
    )


@dataclass
class SplitEvaluation:
    """The result rows of one split, what was fitted (for inspection), and each fit's timing."""

    results: pd.DataFrame
    fitted: dict[str, Any]
    timings: pd.DataFrame


@dataclass(frozen=True)
class SplitInputs:
    """What evaluate_split is given, checked."""

    values: np.ndarray
    labels: np.ndarray
    is_train: np.ndarray
    layers: np.ndarray
    class_names: Sequence[str]
    feature_names: Sequence[str] | None


def prepare(
    inputs: SplitInputs, train_rows: np.ndarray, scored_rows: np.ndarray, settings: TransferSettings
) -> Prepared:
    """Standardisation and DKS rankings fitted on `train_rows`, applied to both row sets."""
    train_values = inputs.values[train_rows]
    standardisation = Standardisation.fit(train_values)
    ranking = dks_ranking(
        train_values,
        inputs.labels[train_rows],
        inputs.class_names,
        bins=settings.dks.bins,
        repetitions=settings.calibration.repetitions,
        seed=settings.calibration.seed,
        workers=settings.dks.workers,
        feature_names=inputs.feature_names,
    )
    return Prepared(
        standardisation=standardisation,
        ranking=ranking,
        labels=inputs.labels[train_rows],
        scored_labels=inputs.labels[scored_rows],
        train={FULL_NETWORK: standardisation.apply(train_values)},
        scored={FULL_NETWORK: standardisation.apply(inputs.values[scored_rows])},
        fne_thresholds=(settings.fne.positive, settings.fne.negative),
    )


def check_inputs(values, labels, is_train, layers, class_names, feature_names) -> SplitInputs:
    """The inputs as arrays; a split without training or test images, or a non-finite value,
    is an error."""
    is_train = np.asarray(is_train, bool)
    values = np.asarray(values, np.float32)
    # DKS's own check, on every image (the rankings check the training images only): column
    # reductions, no boolean copy of the matrix (0.6 GB at ImageNet's size).
    feature_range(values.T, 0, feature_names)
    if is_train.all() or not is_train.any():
        raise ValueError(
            f"a split needs training and test images, got {int(is_train.sum())} train and "
            f"{int((~is_train).sum())} test"
        )
    return SplitInputs(
        values=values,
        labels=np.asarray(labels, np.int64),
        is_train=is_train,
        layers=np.asarray(layers).astype(str),
        class_names=class_names,
        feature_names=feature_names,
    )


def result_rows(
    jobs: Sequence[Job],
    fitted: dict[tuple, FitResult],
    train: Prepared,
    test_labels: np.ndarray,
    settings: TransferSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The result table (RESULT_COLUMNS) and each row's timing."""
    rows, timings = [], []
    for job in jobs:
        fit = fitted[job.key()]
        n_features = job.n_features(len(train.standardisation.mean))
        accuracy, per_class = accuracies(test_labels, fit.predictions)
        logger.info(
            "%s %s %s %s: %d features, %s, C = %g, accuracy %.3f (%.1f s)",
            job.row["embedding"], job.row["layer"] or "", job.row["selection"] or "",
            "" if job.row["fraction"] is None else f"{job.row['fraction']:g}", n_features,
            fit.solver, fit.regularisation_c, accuracy, fit.selection_seconds + fit.fit_seconds,
        )  # fmt: skip
        common = {**job.row, "n_features": int(n_features)}
        rows.append(
            {
                **common,
                "classifier": settings.classifier,
                "solver": fit.solver,
                "regularisation_c": fit.regularisation_c,
                "c_at_grid_edge": bool(fit.c_at_grid_edge),
                "converged": bool(fit.converged),
                "n_train": int(train.labels.size),
                "n_test": int(test_labels.size),
                "accuracy": accuracy,
                "mean_per_class_accuracy": per_class,
            }
        )
        timings.append(
            {
                **common,
                "solver": fit.solver,
                "selection_seconds": fit.selection_seconds,
                "fit_seconds": fit.fit_seconds,
                "n_iter": fit.n_iter,
                "holdout_accuracy": fit.holdout_accuracy,
            }
        )
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS)), pd.DataFrame(timings)
