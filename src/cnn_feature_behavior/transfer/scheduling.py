"""When each classifier of a split is fitted, on how many threads, and what memory it holds.

Kinds of matrix are fitted one after the other (continuous, then FNE), so that a kind's Gram
matrices are freed before the next kind's are made (1.2 GB each at 12,416 features); within a
kind every closed-form choice (ridge's C, the discriminant's shrinkage) on the fit parts comes
before the refits on the training split, so that one such Gram matrix is held at a time. The
closed-form solvers run their products and large factorisations on `transfer.workers` BLAS
threads; the logistic regressions (and LinearSVC) run `transfer.workers`
at once on one BLAS thread each (threadpoolctl), in tasks: a curve's sizes in turn, fewest
features first, each C search from the previous size's choice (`curve_tasks`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from cnn_feature_behavior.transfer import ridge
from cnn_feature_behavior.transfer.blas import blas_threads
from cnn_feature_behavior.transfer.classifier import (
    CLOSED_FORM,
    ROOT_RAW,
    FitResult,
    better_choice,
    choose_from_scores,
    closed_form_grid,
    fit_probe,
    refit,
    representations,
    score_fold,
    walk_shrinkage,
)
from cnn_feature_behavior.transfer.discriminant import DiscriminantData, DiscriminantSystem
from cnn_feature_behavior.transfer.jobs import (
    FULL_NETWORK,
    KINDS,
    Job,
    Part,
    closed_form_system,
    column_subset,
    fold_data,
    probe_data,
    refit_data,
)
from cnn_feature_behavior.transfer.ridge import THREADED_SYSTEM
from cnn_feature_behavior.transfer.settings import DISCRIMINANT, RIDGE, TransferSettings


def fit_jobs(
    jobs: Sequence[Job],
    folds: Sequence[Part],
    train: Part,
    solver: str,
    settings: TransferSettings,
    keep_maps: bool = False,
) -> dict[tuple, FitResult]:
    """Each distinct job's fit by `solver`, one kind of matrix at a time (a kind's matrices and
    Gram matrices are freed before the next kind's are made). The refits' linear maps are kept
    with `keep_maps` only (at ImageNet's size a kind's maps would take gigabytes)."""
    workers = settings.workers or os.cpu_count() or 1
    results: dict[tuple, FitResult] = {}
    for kind in KINDS:
        distinct = {job.key(): job for job in jobs if job.kind == kind}
        fit = _fit_closed_form_jobs if solver in CLOSED_FORM else _fit_iterative_jobs
        results.update(fit(distinct, kind, folds, train, solver, settings, workers, keep_maps))
        for part in (*folds, train):
            part.release(kind)
    return results


def _kept(fit: FitResult, keep_maps: bool) -> FitResult:
    """The fit, without its linear map unless it is to be kept."""
    return fit if keep_maps else replace(fit, weights=None, intercepts=None, fold_weights=None)


def _fit_closed_form_jobs(
    jobs: dict[tuple, Job],
    kind: str,
    folds: Sequence[Part],
    train: Part,
    solver: str,
    settings: TransferSettings,
    workers: int,
    keep_maps: bool,
) -> dict[tuple, FitResult]:
    """A closed-form solver, fold after fold: every job's held-out scores at every strength of
    the grid, in each of the values its folds choose between (`representations`), while the
    fold's Gram matrix is held (1.2 GB at 12,416 features), then (freed) the next fold's; then
    each job's strength and values, and the refits on the training split's Gram matrix.
    The discriminant's wide rows (`walked`) instead walk the grid once every fold's scatter is
    at hand (`KeptFold`, float32: 0.6 GB a fold at 12,416 features). Systems of fewer than
    THREADED_SYSTEM features are solved `workers` at once on one BLAS thread each
    (`_each_job`), larger ones one after the other on `workers` threads."""
    if not jobs:
        return {}
    classes, grid = np.unique(train.labels), closed_form_grid(solver, settings)
    candidates = {
        key: representations(solver, kind == FULL_NETWORK, job.n_features(), settings)
        for key, job in jobs.items()
    }
    walked = _walked(solver, jobs, candidates, settings)
    gridded = {key: job for key, job in jobs.items() if key not in walked}
    scores: dict[tuple, list] = {(key, r): [] for key in gridded for r in candidates[key]}
    seconds = dict.fromkeys(jobs, 0.0)
    kept: list[KeptFold] = []

    def score(part: Part, key: tuple, threads: int) -> tuple[tuple, dict, float]:
        start, job, scored = time.perf_counter(), jobs[key], {}
        for values in candidates[key]:
            system = closed_form_system(solver, job, part, values, classes, threads, keep=True)
            fold = fold_data(job, part, train, system, representation=values)
            scored[values] = score_fold(solver, fold, grid)
        return key, scored, time.perf_counter() - start

    for part in folds:
        _shared_statistics(solver, kind, part, jobs, candidates, classes, workers)
        for key, scored, spent in _each_job(gridded, partial(score, part), workers):
            for values, fold_scores in scored.items():
                scores[(key, values)].append(fold_scores)
            seconds[key] += spent
        if walked:
            kept.append(KeptFold.of(part, kind, {candidates[key][0] for key in walked}))
        part.release(kind)  # its matrices and Gram matrix, before the next fold's
    held_labels = np.concatenate([part.scored_labels for part in folds])
    choices = {}
    for key in gridded:
        choices[key] = better_choice([
            replace(choose_from_scores(solver, grid, scores[(key, r)], held_labels),
                    representation=r)
            for r in candidates[key]
        ])  # fmt: skip
    choices.update(_walk_choices(jobs, walked, candidates, kept, choices, grid, workers, seconds))
    kept.clear()  # every fold's scatter, before the training split's

    def fit(key: tuple, threads: int) -> tuple[tuple, FitResult]:
        choice = replace(choices[key], selection_seconds=seconds[key])
        values = choice.representation
        system = closed_form_system(solver, jobs[key], train, values, classes, threads)
        data = refit_data(jobs[key], train, system, values)
        return key, _kept(refit(choice, data, settings), keep_maps)

    _shared_statistics(solver, kind, train, jobs, candidates, classes, workers)
    return dict(_each_job(jobs, fit, workers))


def _walked(
    solver: str,
    jobs: dict[tuple, Job],
    candidates: dict[tuple, tuple[str, ...]],
    settings: TransferSettings,
) -> list[tuple]:
    """The discriminant's jobs that walk its grid (`discriminant.walk_min_features` features
    or more, one kind of values), fewest features first."""
    if solver != DISCRIMINANT:
        return []
    least = settings.discriminant.walk_min_features
    wide = [
        key for key, job in jobs.items() if job.n_features() >= least and len(candidates[key]) == 1
    ]
    return sorted(wide, key=lambda key: jobs[key].n_features())


@dataclass
class KeptFold:
    """What a fold's walks need once its part has released the kind: the discriminant's
    statistics in float32 (`DiscriminantData.compact`) and the held-out matrix, in each values
    the walked jobs see, and the part (its rankings find a job's columns)."""

    part: Part
    data: dict[str, DiscriminantData]
    held: dict[str, np.ndarray]

    @classmethod
    def of(cls, part: Part, kind: str, representations: set[str]) -> KeptFold:
        data = {r: part.discriminant[(kind, r)].compact() for r in representations}
        held = {r: part.matrices(kind, r)[1] for r in representations}
        return cls(part, data, held)

    def fold(self, job: Job, representation: str) -> tuple[DiscriminantSystem, np.ndarray, Any]:
        """(system, held-out values, held-out labels) of one job: walk_shrinkage's fold."""
        columns = job.columns(self.part)
        system = self.data[representation].system(columns, keep=True)
        values = column_subset(self.held[representation], columns)
        return system, values, self.part.scored_labels


def _walk_choices(
    jobs: dict[tuple, Job],
    walked: Sequence[tuple],
    candidates: dict[tuple, tuple[str, ...]],
    kept: Sequence[KeptFold],
    choices: dict[tuple, FitResult],
    grid: Sequence[float],
    workers: int,
    seconds: dict[tuple, float],
) -> dict[tuple, FitResult]:
    """Each walked job's shrinkage (fewest features first), from its curve's previous size's
    choice, else from the widest chosen row of its kind, else from the grid's middle."""
    walks: dict[tuple, FitResult] = {}
    for key in walked:
        start, job = time.perf_counter(), jobs[key]
        (representation,) = candidates[key]
        folds = [fold.fold(job, representation) for fold in kept]
        with blas_threads(workers):  # (systems under THREADED_SYSTEM factorise on one)
            choice = walk_shrinkage(folds, grid, _walk_start(job, jobs, {**choices, **walks}))
        walks[key] = replace(choice, representation=representation)
        seconds[key] += time.perf_counter() - start
    return walks


def _walk_start(job: Job, jobs: dict[tuple, Job], choices: dict[tuple, FitResult]) -> float | None:
    """Where a walk starts: the shrinkage of the widest chosen row of the job's curve (same
    kind, ranking and draw: the previous size's), else of its kind, else None (the grid's
    middle)."""

    def curve(other: Job) -> tuple | None:
        on_curve = other.row["selection"] is not None and not other.every_column
        return (other.kind, other.row["selection"], other.row["draw"]) if on_curve else None

    chosen = [(jobs[key], choice) for key, choice in choices.items() if key in jobs]
    same_curve = [pair for pair in chosen if curve(job) and curve(pair[0]) == curve(job)]
    same_kind = [pair for pair in chosen if pair[0].kind == job.kind]
    for pairs in (same_curve, same_kind):
        if pairs:
            return max(pairs, key=lambda pair: pair[0].n_features())[1].shrinkage
    return None


def _shared_statistics(
    solver: str,
    kind: str,
    part: Part,
    jobs: dict[tuple, Job],
    candidates: dict[tuple, tuple[str, ...]],
    classes: np.ndarray,
    workers: int,
) -> None:
    """A part's Gram matrices that the jobs share (one per kind and values), made before the
    threads read them, each on `workers` BLAS threads."""
    if solver == RIDGE:
        data = part.ridge_data(kind, classes, workers)
        if any(ridge.primal(job.n_features(), data.n_images) for job in jobs.values()):
            data.gram()
        return
    for values in {r for chosen in candidates.values() for r in chosen} - {ROOT_RAW}:
        part.discriminant_data(kind, values, classes, workers)


def _each_job(jobs: dict[tuple, Job], task: Callable, workers: int) -> list:
    """`task(key, threads)` of every job: those of fewer than THREADED_SYSTEM features (each
    key's columns, twice with the roots and raw values side by side) `workers` at once on one
    BLAS thread each (one system's solve at a time left one of the two cores idle: 859 s of
    CPU in 740 s on the real Caltech-101), then the larger ones in turn on `workers` threads."""
    small = [key for key, job in jobs.items() if job.n_features() < THREADED_SYSTEM]
    large = [key for key, job in jobs.items() if job.n_features() >= THREADED_SYSTEM]
    with blas_threads(1), ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(lambda key: task(key, 1), small))
    return done + [task(key, workers) for key in large]


def _fit_iterative_jobs(
    jobs: dict[tuple, Job],
    kind: str,
    folds: Sequence[Part],
    train: Part,
    solver: str,
    settings: TransferSettings,
    workers: int,
    keep_maps: bool,
) -> dict[tuple, FitResult]:
    """Logistic regressions (or LinearSVC), `workers` at once on one BLAS thread each: the
    solvers' many small products spend more time synchronising BLAS threads than computing
    (tenfold on a loaded machine). Each job's column subsets are made when its turn comes.

    A curve's fits (one kind, one ranking or random draw) run in turn from its fewest features
    up, each C search starting from the previous size's choice and each fold's first fit from
    the same fold's weights at the previous size (with the refits starting from the folds'
    weights feature by feature, 15% less CPU on the flowers102-sized benchmark with one held-out
    part: 54 s against 64 on one thread). The task of the most columns starts first."""

    def fit_in_turn(task: list[tuple[tuple, Job]]) -> dict[tuple, FitResult]:
        fitted: dict[tuple, FitResult] = {}
        start_c, previous = None, None
        for key, job in task:
            data = probe_data(job, folds, train, previous)
            done = fit_probe(data, solver, settings, start_c)
            fitted[key], start_c, previous = (
                _kept(done, keep_maps),
                done.regularisation_c,
                (job, done),
            )
        return fitted

    for part in (*folds, train):  # made once, before the threads read them
        part.matrices(kind)
    tasks = curve_tasks(jobs)
    with blas_threads(1), warnings.catch_warnings():
        # Here, not in each thread: catch_warnings is process-wide, and a thread leaving its
        # own restored the filters while another was still fitting.
        warnings.simplefilter("ignore", ConvergenceWarning)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(fit_in_turn, task) for task in tasks]
            return {key: done for future in futures for key, done in future.result().items()}


def curve_tasks(jobs: dict[tuple, Job]) -> list[list[tuple[tuple, Job]]]:
    """The jobs in tasks: each curve's proper subsets (one kind, one ranking or random draw)
    together, fewest features first; every other job alone. The tasks of the most columns in
    all come first."""
    tasks: dict[Any, list[tuple[tuple, Job]]] = {}
    for key, job in jobs.items():
        row = job.row
        on_curve = row["selection"] is not None and not job.every_column
        group = (job.kind, row["selection"], row["draw"]) if on_curve else key
        tasks.setdefault(group, []).append((key, job))
    for task in tasks.values():
        task.sort(key=lambda pair: pair[1].n_features())
    return sorted(tasks.values(), key=lambda task: -sum(job.n_features() for _, job in task))
