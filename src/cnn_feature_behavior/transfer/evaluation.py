"""One train/test split's transfer evaluation: every embedding, fitted on the training images only.

Compared (each standardised with the training images' statistics): each layer alone, the full
network (continuous), the FNE (three-valued), and curves of the full network's features kept
by every DKS ranking (features.RANKINGS), by the ANOVA-F filter and by `random_draws` seeded
random draws, continuous and three-valued. One solver fits every row (chosen once from the
evaluation's size, or forced by `transfer.classifier`). Nothing fitted sees the test images:
standardisation, DKS, t+ / t-, the rankings, the folds that choose C and the classifier itself
use the training rows alone; test labels are only read by the measures. C is chosen by
stratified k-fold cross-validation on the training split: each fold's training part has its own
standardisation, FNE and rankings, fitted on it alone (its held-out images are scored with them,
as test images are later); then the embedding is refitted on the whole training split with the
whole split's.

Steps: `training_folds`, `prepare` (standardisation, rankings of one part: each fold's training
part, and the training split), `evaluation_solver`, `jobs.embedding_jobs` (the feature set of
each result row), `scheduling.fit_jobs` (the classifiers, one kind of matrix at a time, so that
a kind's Gram matrices are freed before the next kind's), `result_rows`.
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
from cnn_feature_behavior.transfer.classifier import FitResult, accuracies, solver_for
from cnn_feature_behavior.transfer.embeddings import Standardisation
from cnn_feature_behavior.transfer.features import (
    ANOVA_F,
    anova_f_order,
    dks_ranking,
    random_order,
)
from cnn_feature_behavior.transfer.jobs import FULL_NETWORK, Job, Part, embedding_jobs
from cnn_feature_behavior.transfer.scheduling import fit_jobs
from cnn_feature_behavior.transfer.settings import DISCRIMINANT, RIDGE, TransferSettings
from cnn_feature_behavior.transfer.splits import stratified_folds

logger = logging.getLogger(__name__)

RESULT_COLUMNS = (
    "embedding",
    "layer",
    "selection",
    "fraction",
    "draw",
    "n_features",
    "classifier",
    "solver",
    "regularisation_c",
    "ridge_alpha",
    "shrinkage",
    "c_at_grid_edge",
    "converged",
    "cv_loss",
    "cv_accuracy",
    "cv_mean_per_class_accuracy",
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
    repetition: int = 0,
    feature_names: Sequence[str] | None = None,
) -> SplitEvaluation:
    """Every embedding's classifier fitted on the training rows and measured on the test rows.

    values: (images, features) float32; labels: (images,) ints 0..C-1; is_train: (images,) bool;
    layers: the layer of each feature. repetition: this split's number, with `transfer.seed` the
    seed of the random draws and with `c_selection.seed` the seed of the folds.
    """
    inputs = check_inputs(values, labels, is_train, layers, class_names, feature_names)
    started = time.perf_counter()
    train_rows, test_rows = np.flatnonzero(inputs.is_train), np.flatnonzero(~inputs.is_train)
    n_features = inputs.values.shape[1]
    random_orders = [
        random_order(n_features, [settings.seed, repetition, draw])
        for draw in range(settings.random_draws)
    ]
    folds = training_folds(inputs.labels[train_rows], settings, repetition)
    parts = [
        prepare(inputs, train_rows[fit], train_rows[held], settings, random_orders)
        for fit, held in folds
    ]
    train = prepare(inputs, train_rows, test_rows, settings, random_orders)
    prepared = time.perf_counter()
    solver = evaluation_solver(train.labels, n_features, settings)
    jobs = embedding_jobs(inputs.layers, settings)
    fitted = fit_jobs(jobs, parts, train, solver, settings)
    results, timings = result_rows(jobs, fitted, train, settings)
    return SplitEvaluation(
        results=results,
        predictions=np.stack([fitted[job.key()].predictions for job in jobs]),
        test_labels=train.scored_labels,
        fitted={
            "mean": train.standardisation.mean,
            "scale": train.standardisation.scale,
            "fold_means": [part.standardisation.mean for part in parts],
            "t_plus": train.ranking.t_plus,
            "t_minus": train.ranking.t_minus,
            "dks": train.ranking.dks,
            "rankings": {**train.ranking.orders, ANOVA_F: train.anova_f},
            "fold_rankings": [{**part.ranking.orders, ANOVA_F: part.anova_f} for part in parts],
            "random": random_orders,
            "selections": {
                (job.row["selection"], job.row["draw"], job.row["fraction"]): _all_or(
                    job.columns(train), n_features
                )
                for job in jobs
                if job.row["selection"] is not None and job.kind == FULL_NETWORK
            },
            "folds": folds,
            "solver": solver,
            "seconds": {
                "standardisation_and_rankings": prepared - started,
                "classifiers": time.perf_counter() - prepared,
            },
        },
        timings=timings,
    )


def _all_or(columns: np.ndarray | None, n_features: int) -> np.ndarray:
    return np.arange(n_features) if columns is None else columns


@dataclass
class SplitEvaluation:
    """The result rows of one split, each row's test predictions (rows in the results' order,
    then test images) with the test labels, what was fitted (for inspection), and each fit's
    timing."""

    results: pd.DataFrame
    predictions: np.ndarray
    test_labels: np.ndarray
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


def training_folds(
    train_labels: np.ndarray, settings: TransferSettings, repetition: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of the training split that choose C (splits.stratified_folds, seeded with
    `c_selection.seed` and the repetition; drawn `c_selection.repeats` times, the first draw's
    seed as without repeats); a fold with nothing held out is an error."""
    selection = settings.c_selection
    n_folds = selection.folds
    folds = []
    for repeat in range(selection.repeats):
        seed = [selection.seed, repetition] + ([repeat] if repeat else [])
        folds += stratified_folds(train_labels, n_folds, seed)
    if any(held.size == 0 for _, held in folds):
        raise ValueError(
            f"transfer.c_selection.folds = {n_folds}: the training split's "
            f"{train_labels.size} images leave a fold with no held-out image (a class of one "
            "image is never held out); set fewer folds"
        )
    return folds


def evaluation_solver(train_labels: np.ndarray, n_features: int, settings: TransferSettings) -> str:
    """The one solver of every row of the evaluation (classifier.solver_for on its widest
    design, the full network), logged once."""
    n_classes = np.unique(train_labels).size
    solver = solver_for(train_labels.size, n_features, n_classes, settings)
    logger.info(
        "transfer: %s fits every row (transfer.classifier: %s; %d training images, %d features, "
        "%d classes)",
        solver, settings.classifier, train_labels.size, n_features, n_classes,
    )  # fmt: skip
    return solver


def prepare(
    inputs: SplitInputs,
    train_rows: np.ndarray,
    scored_rows: np.ndarray,
    settings: TransferSettings,
    random_orders: Sequence[np.ndarray],
) -> Part:
    """Standardisation, DKS rankings (with t+ / t-) and the ANOVA-F order fitted on
    `train_rows` alone; their matrices are made when a kind's turn comes (jobs.Part)."""
    train_values = inputs.values[train_rows]
    labels = inputs.labels[train_rows]
    ranking = dks_ranking(
        train_values,
        labels,
        inputs.class_names,
        bins=settings.dks.bins,
        repetitions=settings.calibration.repetitions,
        seed=settings.calibration.seed,
        workers=settings.dks.workers,
        feature_names=inputs.feature_names,
    )
    return Part(
        values=inputs.values,
        train_rows=train_rows,
        scored_rows=scored_rows,
        labels=labels,
        scored_labels=inputs.labels[scored_rows],
        standardisation=Standardisation.fit(train_values),
        ranking=ranking,
        anova_f=anova_f_order(train_values, labels),
        random_orders=random_orders,
        fne=settings.fne,
    )


def check_inputs(
    values, labels, is_train, layers, class_names, feature_names, test: bool = True
) -> SplitInputs:
    """The inputs as arrays; a split without training images (or, with `test`, without test
    images), or a non-finite value, is an error."""
    is_train = np.asarray(is_train, bool)
    values = np.asarray(values, np.float32)
    # DKS's own check, on every image (the rankings check the training images only): column
    # reductions, no boolean copy of the matrix (0.6 GB at ImageNet's size).
    feature_range(values.T, 0, feature_names)
    if (test and is_train.all()) or not is_train.any():
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
    jobs: Sequence[Job], fitted: dict[tuple, FitResult], train: Part, settings: TransferSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The result table (RESULT_COLUMNS) and each row's timing."""
    rows, timings = [], []
    test_labels = train.scored_labels
    for job in jobs:
        fit = fitted[job.key()]
        accuracy, per_class = accuracies(test_labels, fit.predictions)
        row = job.row
        logger.info(
            "%s %s %s %s %s: %d features, %s, C = %g, shrinkage %g, cv loss %.3f, accuracy %.3f "
            "(%.1f s)",
            row["embedding"], row["layer"] or "", row["selection"] or "",
            "" if row["fraction"] is None else f"{row['fraction']:g}",
            "" if row["draw"] is None else f"draw {row['draw']}", job.n_features(), fit.solver,
            fit.regularisation_c, fit.shrinkage, fit.cv_loss, accuracy, fit.selection_seconds + fit.fit_seconds,
        )  # fmt: skip
        common = {**row, "n_features": job.n_features()}
        rows.append(
            {
                **common,
                "classifier": settings.classifier,
                "solver": fit.solver,
                **strength_columns(fit),
                "c_at_grid_edge": bool(fit.c_at_grid_edge),
                "converged": bool(fit.converged),
                "cv_loss": fit.cv_loss,
                "cv_accuracy": fit.cv_accuracy,
                "cv_mean_per_class_accuracy": fit.cv_mean_per_class_accuracy,
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
                "representation": fit.representation,
                "cv_losses": fit.cv_losses,
            }
        )
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    table["draw"] = table["draw"].astype("Int64")
    return table, pd.DataFrame(timings)


def strength_columns(fit: FitResult) -> dict[str, float]:
    """One regularisation convention: scikit-learn's C for the logistic regression (and
    LinearSVC's fixed C) in `regularisation_c`; ridge's own alpha (1 / C of its search) in
    `ridge_alpha`; the discriminant's shrinkage in `shrinkage`; NaN in the columns that are not
    the solver's."""
    columns = dict.fromkeys(("regularisation_c", "ridge_alpha", "shrinkage"), np.nan)
    if fit.solver == RIDGE:
        columns["ridge_alpha"] = 1.0 / fit.regularisation_c
    elif fit.solver == DISCRIMINANT:
        columns["shrinkage"] = fit.shrinkage
    else:
        columns["regularisation_c"] = fit.regularisation_c
    return columns
