"""The result rows' feature sets and the matrices they are fitted on.

`Prepared`: one training matrix's embeddings (standardisation, FNE and DKS rankings fitted on its
images alone) and the images scored with them; `Job`: one result row's feature set, on the fit
part and on the training split (a ranking's selection can differ between them);
`embedding_jobs`: every row's; `probe_data`: a job's matrices as the solver dispatch
(classifier.py) takes them; `solver_of`: its solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.transfer import ridge
from cnn_feature_behavior.transfer.classifier import ProbeData, solver_for
from cnn_feature_behavior.transfer.embeddings import Standardisation
from cnn_feature_behavior.transfer.embeddings import fne_values as three_valued
from cnn_feature_behavior.transfer.features import DksRanking, curve_sizes
from cnn_feature_behavior.transfer.settings import TransferSettings

LAYER, FULL_NETWORK, FNE, RANDOM = "layer", "full_network", "fne", "random"
KINDS = (FULL_NETWORK, FNE)


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
