"""When each classifier of a split is fitted, on how many threads, and what memory it holds.

Kinds of matrix are fitted one after the other (continuous, then FNE), so that a kind's Gram
matrices are freed before the next kind's are made (1.2 GB each at 12,416 features); within a
kind every ridge C choice on the fit part comes before the refits on the training split, so that
one such Gram matrix is held at a time. Ridge runs its products and large factorisations on
`transfer.workers` BLAS threads; the logistic regressions (and LinearSVC) run `transfer.workers`
at once on one BLAS thread each (threadpoolctl), in tasks: a curve's sizes in turn, fewest
features first, each C search from the previous size's choice (`curve_tasks`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from cnn_feature_behavior.transfer import ridge
from cnn_feature_behavior.transfer.classifier import FitResult, choose_c, fit_probe, refit
from cnn_feature_behavior.transfer.jobs import (
    FNE,
    FULL_NETWORK,
    KINDS,
    Job,
    Prepared,
    probe_data,
    solver_of,
)
from cnn_feature_behavior.transfer.settings import RIDGE, TransferSettings


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
