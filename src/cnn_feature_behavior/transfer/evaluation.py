"""One train/test split's transfer evaluation: every embedding, fitted on the training images only.

Compared (each standardised with the training images' statistics): each layer alone, the full
network (continuous), the FNE (three-valued), and curves of seeded random selections and of every
DKS ranking (features.RANKINGS) of the full network's features, continuous and three-valued.
Nothing fitted sees the test images: standardisation, DKS, t+ / t-, the rankings, the held-out
part that chooses C and the classifier itself use the training rows alone; test labels are only
read by the measures. C is chosen on a fit part of the training split whose own standardisation,
FNE and rankings are fitted on it alone (the held-out images are scored with them, as test images
are later), then the embedding is refitted on the whole training split with the whole split's.

Steps: `prepare` (standardisation, FNE, rankings of one part), `embedding_jobs` (the feature set
of each result row, on the fit part and on the training split), `fit_jobs` (the classifiers,
one kind of matrix at a time, so that a kind's Gram matrices are freed before the next kind's),
`result_rows`.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from cnn_feature_behavior.statistics.dks import feature_range
from cnn_feature_behavior.transfer import ridge
from cnn_feature_behavior.transfer.classifier import (
    FitResult,
    ProbeData,
    accuracies,
    choose_c,
    fit_probe,
    holdout_split,
    refit,
    solver_for,
)
from cnn_feature_behavior.transfer.embeddings import Standardisation
from cnn_feature_behavior.transfer.embeddings import fne_values as three_valued
from cnn_feature_behavior.transfer.features import (
    DksRanking,
    curve_sizes,
    dks_ranking,
    random_order,
)
from cnn_feature_behavior.transfer.settings import RIDGE, TransferSettings

logger = logging.getLogger(__name__)

LAYER, FULL_NETWORK, FNE, RANDOM = "layer", "full_network", "fne", "random"
KINDS = (FULL_NETWORK, FNE)
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
    "n_train",
    "n_test",
    "accuracy",
    "mean_per_class_accuracy",
)


@dataclass
class SplitEvaluation:
    """The result rows of one split, what was fitted (for inspection), and each fit's timing."""

    results: pd.DataFrame
    fitted: dict[str, Any]
    timings: pd.DataFrame


@dataclass
class Prepared:
    """One training matrix's embeddings (fitted on its images only) and the images scored with
    them: the fit part with the held-out images, or the training split with the test images."""

    standardisation: Standardisation
    ranking: DksRanking
    labels: np.ndarray
    scored_labels: np.ndarray
    train: dict[str, np.ndarray]  # kind -> training rows
    scored: dict[str, np.ndarray]  # kind -> scored rows
    fne_thresholds: tuple[float, float]
    ridge: dict[str, ridge.RidgeData] = field(default_factory=dict)

    def make_fne(self) -> None:
        """The three-valued matrices from the continuous ones (made when the FNE's turn comes)."""
        for matrices in (self.train, self.scored):
            matrices[FNE] = three_valued(matrices[FULL_NETWORK], *self.fne_thresholds)

    def drop(self, kind: str) -> None:
        for matrices in (self.train, self.scored):
            matrices.pop(kind, None)
        self.ridge.pop(kind, None)

    def ridge_data(self, kind: str, classes: np.ndarray, threads: int) -> ridge.RidgeData:
        if kind not in self.ridge:
            self.ridge[kind] = ridge.RidgeData.of(self.train[kind], self.labels, classes, threads)
        return self.ridge[kind]


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


@dataclass(frozen=True)
class Job:
    """One result row's feature set: its columns on the fit part and on the training split (a
    ranking's selection can differ between them), None for every column."""

    row: dict[str, Any]
    kind: str
    fit_columns: np.ndarray | None
    train_columns: np.ndarray | None

    def n_features(self, n_all: int) -> int:
        """How many features this row's classifier sees, of the embedding's n_all."""
        return n_all if self.train_columns is None else self.train_columns.size

    def key(self) -> tuple:
        def code(columns: np.ndarray | None) -> bytes:
            return b"all" if columns is None else columns.tobytes()

        return (self.kind, code(self.fit_columns), code(self.train_columns))


def embedding_jobs(
    layers: np.ndarray, fit: Prepared, train: Prepared, shuffled: np.ndarray, settings
) -> list[Job]:
    """Every result row's feature set: layers, full network, FNE, then each kind's curves."""
    n_features = layers.size
    jobs = []
    for layer in pd.unique(layers):
        columns = np.flatnonzero(layers == layer)
        row = {"embedding": LAYER, "layer": layer, "selection": None, "fraction": None}
        jobs.append(Job(row, FULL_NETWORK, columns, columns))
    for kind in KINDS:
        row = {"embedding": kind, "layer": None, "selection": None, "fraction": None}
        jobs.append(Job(row, kind, None, None))
    for kind in KINDS:
        for selection in (*settings.rankings, RANDOM):
            for fraction, k in curve_sizes(n_features, settings.fractions):
                kept = [
                    None if k == n_features else np.sort(_order(part, selection, shuffled)[:k])
                    for part in (fit, train)
                ]
                row = {"embedding": kind, "layer": None, "selection": selection}
                jobs.append(Job({**row, "fraction": fraction}, kind, *kept))
    return jobs


def _order(prepared: Prepared, selection: str, shuffled: np.ndarray) -> np.ndarray:
    return shuffled if selection == RANDOM else prepared.ranking.orders[selection]


def _subset(matrix: np.ndarray, columns: np.ndarray | None) -> np.ndarray:
    return matrix if columns is None else matrix[:, columns]


def probe_data(job: Job, fit: Prepared, train: Prepared, systems: tuple | None = None) -> ProbeData:
    """The matrices of one job: its columns of the fit part, held-out images, training split and
    test images. With `systems` (ridge's (fit part, training split) systems, either None until
    its turn), the fit part's and training split's own columns are not copied: ridge reads its
    systems instead."""
    fit_system, train_system = systems or (None, None)
    return ProbeData(
        fit_values=None if systems else _subset(fit.train[job.kind], job.fit_columns),
        fit_labels=fit.labels,
        held_values=_subset(fit.scored[job.kind], job.fit_columns),
        held_labels=fit.scored_labels,
        train_values=None if systems else _subset(train.train[job.kind], job.train_columns),
        train_labels=train.labels,
        test_values=_subset(train.scored[job.kind], job.train_columns),
        fit_ridge=fit_system,
        train_ridge=train_system,
        common_columns=_common_columns(job.fit_columns, job.train_columns),
    )


def _common_columns(
    fit_columns: np.ndarray | None, train_columns: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The positions of the features both column sets hold, in each; None where they are the
    same set (every column, or one layer's)."""
    if fit_columns is None or np.array_equal(fit_columns, train_columns):
        return None
    _, in_fit, in_train = np.intersect1d(fit_columns, train_columns, return_indices=True)
    return in_fit, in_train


def solver_of(job: Job, train: Prepared, settings: TransferSettings) -> str:
    """The solver that fits a job (classifier.solver_for on its training matrix's size)."""
    n_features = job.n_features(len(train.standardisation.mean))
    return solver_for(train.labels.size, n_features, np.unique(train.labels).size, settings)


def fit_jobs(
    jobs: Sequence[Job], fit: Prepared, train: Prepared, settings: TransferSettings
) -> dict[tuple, FitResult]:
    """Each distinct job's fit, one kind of matrix at a time (a kind's matrices and Gram
    matrices are freed before the next kind's are made)."""
    workers = settings.workers or os.cpu_count() or 1
    results: dict[tuple, FitResult] = {}
    for kind in KINDS:
        if kind == FNE:
            for prepared in (fit, train):
                prepared.make_fne()
                prepared.drop(FULL_NETWORK)
        distinct = {job.key(): job for job in jobs if job.kind == kind}
        solvers = {key: solver_of(job, train, settings) for key, job in distinct.items()}
        ridge_jobs = {key: job for key, job in distinct.items() if solvers[key] == RIDGE}
        results.update(_fit_ridge_jobs(ridge_jobs, fit, train, settings, workers))
        others = {key: job for key, job in distinct.items() if solvers[key] != RIDGE}
        results.update(_fit_iterative_jobs(others, solvers, fit, train, settings, workers))
        for prepared in (fit, train):
            prepared.ridge.pop(kind, None)  # the Gram matrices of this kind
    return results


def _fit_ridge_jobs(
    jobs: dict[tuple, Job], fit: Prepared, train: Prepared, settings, workers: int
) -> dict[tuple, FitResult]:
    """Ridge, job after job: every C selection on the fit part, then (its Gram matrix freed:
    1.2 GB at 12,416 features) every refit on the training split. Products and large
    factorisations run on `workers` BLAS threads (ridge.RidgeSystem.weights)."""
    if not jobs:
        return {}
    kind = next(iter(jobs.values())).kind
    classes = np.unique(train.labels)
    with threadpool_limits(limits=1):
        choices = _choose_ridge_cs(
            jobs, fit, train, fit.ridge_data(kind, classes, workers), settings
        )
        fit.ridge.pop(kind)
        data = train.ridge_data(kind, classes, workers)
        return {
            key: refit(
                choices[key],
                probe_data(job, fit, train, (None, ridge.RidgeSystem(data, job.train_columns))),
                settings,
            )
            for key, job in jobs.items()
        }


def _choose_ridge_cs(
    jobs: dict[tuple, Job], fit: Prepared, train: Prepared, data: ridge.RidgeData, settings
) -> dict[tuple, FitResult]:
    """Each job's C on the fit part; each large system's search starts from the last one's."""
    choices, hint = {}, None
    for key, job in jobs.items():
        system = ridge.RidgeSystem(data, job.fit_columns)
        choices[key] = choose_c(probe_data(job, fit, train, (system, None)), RIDGE, settings, hint)
        if system.large:
            hint = choices[key].regularisation_c
    return choices


def _fit_iterative_jobs(
    jobs: dict[tuple, Job], solvers: dict, fit: Prepared, train: Prepared, settings, workers: int
) -> dict[tuple, FitResult]:
    """Logistic regressions and LinearSVC, `workers` at once on one BLAS thread each: the
    solvers' many small products spend more time synchronising BLAS threads than computing
    (tenfold on a loaded machine). Each job's matrices are made when its turn comes.

    A curve's fits (one kind, one selection) run in turn from its fewest features up, each C
    search starting from the previous size's choice (with the refits starting from the fit
    part's weights feature by feature, 15% less CPU on the flowers102-sized benchmark: 54 s
    against 64 on one thread). The task of the most columns starts first."""

    def fit_in_turn(task: list[tuple[tuple, Job]]) -> dict[tuple, FitResult]:
        fitted: dict[tuple, FitResult] = {}
        start_c = None
        for key, job in task:
            fitted[key] = fit_probe(probe_data(job, fit, train), solvers[key], settings, start_c)
            start_c = fitted[key].regularisation_c
        return fitted

    tasks = curve_tasks(jobs, len(train.standardisation.mean))
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # Here, not in each thread: catch_warnings is process-wide, and a thread leaving its
        # own restored the filters while another was still fitting.
        warnings.simplefilter("ignore", ConvergenceWarning)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(fit_in_turn, task) for task in tasks]
            return {key: done for future in futures for key, done in future.result().items()}


def curve_tasks(jobs: dict[tuple, Job], n_features: int) -> list[list[tuple[tuple, Job]]]:
    """The jobs in tasks: each curve's proper subsets (one kind, one selection) together, fewest
    features first; every other job alone. The tasks of the most columns in all come first."""

    tasks: dict[Any, list[tuple[tuple, Job]]] = {}
    for key, job in jobs.items():
        on_curve = job.row["selection"] is not None and job.fit_columns is not None
        tasks.setdefault((job.kind, job.row["selection"]) if on_curve else key, []).append(
            (key, job)
        )
    for task in tasks.values():
        task.sort(key=lambda pair: pair[1].n_features(n_features))
    return sorted(
        tasks.values(), key=lambda task: -sum(job.n_features(n_features) for _, job in task)
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
