"""The result rows' feature sets and the matrices they are fitted on.

`Part`: one training matrix (a fold's training part, or the whole training split) with what is
fitted on its images alone (standardisation, DKS rankings with t+ / t-, the ANOVA-F order) and
the images scored with it (the fold's held-out images, or the test images); its standardised
and three-valued matrices (and, for the discriminant, the standardised signed square roots) are
made when a kind's turn comes and released after. `Job`: one
result row's feature set, whose columns are found on each part (a ranking's selection can
differ between parts). `embedding_jobs`: every row's; `probe_data`: a job's matrices as the
solver dispatch (classifier.py) takes them; `closed_form_system`: a closed-form solver's system
of a job on a part, in one of the values `classifier.representations` names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.transfer import ridge
from cnn_feature_behavior.transfer.classifier import (
    RAW,
    ROOT,
    ROOT_RAW,
    FitResult,
    FoldData,
    ProbeData,
)
from cnn_feature_behavior.transfer.discriminant import DiscriminantData, DiscriminantSystem
from cnn_feature_behavior.transfer.embeddings import Standardisation
from cnn_feature_behavior.transfer.embeddings import fne_values as three_valued
from cnn_feature_behavior.transfer.features import ANOVA_F, DksRanking, curve_sizes
from cnn_feature_behavior.transfer.settings import RIDGE, FneSettings, TransferSettings

LAYER, FULL_NETWORK, FNE, RANDOM = "layer", "full_network", "fne", "random"
KINDS = (FULL_NETWORK, FNE)


@dataclass
class Part:
    """One training matrix (rows `train_rows` of the split's `values`) with its statistics, and
    the images scored with them (`scored_rows`)."""

    values: np.ndarray  # the split's whole (images, features) matrix, not copied
    train_rows: np.ndarray
    scored_rows: np.ndarray
    labels: np.ndarray
    scored_labels: np.ndarray
    standardisation: Standardisation
    ranking: DksRanking
    anova_f: np.ndarray  # feature positions by decreasing F of this part's training images
    random_orders: Sequence[np.ndarray]  # one seeded permutation per draw, shared by the parts
    fne: FneSettings
    _matrices: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    ridge: dict[str, ridge.RidgeData] = field(default_factory=dict)
    discriminant: dict[tuple[str, str], DiscriminantData] = field(default_factory=dict)

    @cached_property
    def root_standardisation(self) -> Standardisation:
        """The standardisation of the signed square roots of the training rows' values."""
        return Standardisation.fit(self.values, self.train_rows, root=True)

    def matrices(self, kind: str, representation: str = RAW) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, scored rows) of one kind, standardised with this part's statistics
        (and three-valued for the FNE; of the values' signed square roots in ROOT), made on
        first need."""
        if (kind, representation) not in self._matrices:
            if representation not in (RAW, ROOT) or (representation == ROOT and kind == FNE):
                raise ValueError(f"no {representation!r} matrices of the {kind} kind")
            fitted = self.root_standardisation if representation == ROOT else self.standardisation
            made = []
            for rows in (self.train_rows, self.scored_rows):
                matrix = fitted.apply(self.values, rows)
                made.append(
                    three_valued(matrix, self.fne.positive, self.fne.negative)
                    if kind == FNE
                    else matrix
                )
            self._matrices[(kind, representation)] = (made[0], made[1])
        return self._matrices[(kind, representation)]

    def release(self, kind: str | None = None) -> None:
        """Forget a kind's matrices and Gram matrices (every kind's with None)."""
        for store in (self._matrices, self.ridge, self.discriminant):
            for name in list(store):
                if kind is None or name == kind or (isinstance(name, tuple) and name[0] == kind):
                    store.pop(name)

    def order(self, selection: str, draw: int | None) -> np.ndarray:
        """The feature positions of a ranking, best first, or a random draw's permutation."""
        if selection == RANDOM:
            return self.random_orders[draw]
        if selection == ANOVA_F:
            return self.anova_f
        return self.ranking.orders[selection]

    def ridge_data(self, kind: str, classes: np.ndarray, threads: int) -> ridge.RidgeData:
        if kind not in self.ridge:
            train = self.matrices(kind)[0]
            self.ridge[kind] = ridge.RidgeData.of(train, self.labels, classes, threads)
        return self.ridge[kind]

    def discriminant_data(
        self, kind: str, representation: str, classes: np.ndarray, threads: int
    ) -> DiscriminantData:
        """The discriminant's statistics of a kind's training matrix in `representation`
        (RAW or ROOT), made on first need."""
        if (kind, representation) not in self.discriminant:
            train = self.matrices(kind, representation)[0]
            data = DiscriminantData.of(train, self.labels, classes, threads)
            self.discriminant[(kind, representation)] = data
        return self.discriminant[(kind, representation)]


@dataclass(frozen=True)
class Job:
    """One result row's feature set: a layer's columns, every column (no selection, or a
    selection keeping them all), or the first `size` features of a ranking or random draw on
    each part."""

    row: dict[str, Any]  # embedding, layer, selection, fraction, draw
    kind: str
    n_all: int  # the full network's features
    layer_columns: np.ndarray | None = None
    size: int | None = None

    @property
    def every_column(self) -> bool:
        return self.layer_columns is None and (self.size is None or self.size == self.n_all)

    def columns(self, part: Part) -> np.ndarray | None:
        """This row's columns on a part, sorted; None for every column."""
        if self.layer_columns is not None:
            return self.layer_columns
        if self.every_column:
            return None
        return np.sort(part.order(self.row["selection"], self.row["draw"])[: self.size])

    def n_features(self) -> int:
        """How many features this row's classifier sees."""
        if self.layer_columns is not None:
            return self.layer_columns.size
        return self.n_all if self.size is None else self.size

    def key(self) -> tuple:
        """Equal for rows fitted on the same features of every part (fitted once)."""
        if self.layer_columns is not None:
            return (self.kind, LAYER, self.row["layer"])
        if self.every_column:
            return (self.kind, "all")
        return (self.kind, self.row["selection"], self.row["draw"], self.size)


def embedding_jobs(layers: np.ndarray, settings: TransferSettings) -> list[Job]:
    """Every result row's feature set: layers, full network, FNE, then each kind's curves: each
    DKS ranking, each filter baseline and each random draw at each of the fractions."""
    n_all = layers.size
    jobs = []
    blank = {"layer": None, "selection": None, "fraction": None, "draw": None}
    for layer in pd.unique(layers):
        row = {**blank, "embedding": LAYER, "layer": layer}
        jobs.append(Job(row, FULL_NETWORK, n_all, layer_columns=np.flatnonzero(layers == layer)))
    for kind in KINDS:
        jobs.append(Job({**blank, "embedding": kind}, kind, n_all))
    curves = [(name, None) for name in (*settings.rankings, *settings.baselines)]
    curves += [(RANDOM, draw) for draw in range(settings.random_draws)]
    for kind in KINDS:
        for selection, draw in curves:
            for fraction, size in curve_sizes(n_all, settings.fractions):
                row = {**blank, "embedding": kind, "selection": selection, "draw": draw}
                jobs.append(Job({**row, "fraction": fraction}, kind, n_all, size=size))
    return jobs


def column_subset(matrix: np.ndarray, columns: np.ndarray | None) -> np.ndarray:
    """The columns of an (images, features) matrix (numpy.take: four times faster than fancy
    indexing on C-ordered rows); the matrix itself for None."""
    return matrix if columns is None else np.take(matrix, columns, axis=1)


def row_values(job: Job, part: Part, representation: str, which: int) -> np.ndarray:
    """One job's columns of a part's training (`which` 0) or scored (1) matrix, in
    `representation`: ROOT_RAW puts the square roots' columns and then the raw values'."""
    columns = job.columns(part)
    if representation == ROOT_RAW:
        return np.hstack(
            [column_subset(part.matrices(job.kind, r)[which], columns) for r in (ROOT, RAW)]
        )
    return column_subset(part.matrices(job.kind, representation)[which], columns)


def closed_form_system(
    solver: str,
    job: Job,
    part: Part,
    representation: str,
    classes: np.ndarray,
    threads: int,
    keep: bool = False,
) -> ridge.RidgeSystem | DiscriminantSystem:
    """A closed-form solver's system of one job on a part's training images: a column subset
    of the part's shared statistics, or (ROOT_RAW: each feature twice, which would double the
    whole matrix) the job's own. `keep`: the discriminant's system keeps its block of the
    scatter between shrinkage values (a fold's, fitted at several)."""
    columns = job.columns(part)
    if solver == RIDGE:
        return ridge.RidgeSystem(part.ridge_data(job.kind, classes, threads), columns)
    if representation == ROOT_RAW:
        train = row_values(job, part, ROOT_RAW, 0)
        return DiscriminantData.of(train, part.labels, classes, threads).system(keep=keep)
    data = part.discriminant_data(job.kind, representation, classes, threads)
    return data.system(columns, keep=keep)


def fold_data(
    job: Job,
    part: Part,
    train: Part,
    system: ridge.RidgeSystem | DiscriminantSystem | None = None,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    representation: str = RAW,
) -> FoldData:
    """One job's columns of a fold's training part and held-out images; with a closed-form
    solver's `system` of those columns, the training part's values are left out (a column
    subset is a copy). `start`: where the fold's fits start."""
    columns = job.columns(part)
    return FoldData(
        values=None if system is not None else row_values(job, part, representation, 0),
        labels=part.labels,
        held_values=row_values(job, part, representation, 1),
        held_labels=part.scored_labels,
        system=system,
        start=start,
        common_columns=_common_columns(columns, job.columns(train)),
    )


def probe_data(
    job: Job, folds: Sequence[Part], train: Part, previous: tuple[Job, FitResult] | None = None
) -> ProbeData:
    """The matrices of one job: its columns of each fold's training part and held-out images, of
    the training split and of the test images. `previous`: the curve's previous size and its
    fit, whose folds' weights start this job's, feature by feature (a fold's selection of the
    smaller size is part of its selection of this one)."""
    columns = job.columns(train)
    train_values, test_values = train.matrices(job.kind)
    starts = [None] * len(folds)
    if previous is not None and previous[1].fold_weights is not None:
        before, fitted = previous
        starts = [
            _moved(weights, intercepts, before.columns(part), job.columns(part))
            for part, (weights, intercepts) in zip(folds, fitted.fold_weights, strict=True)
        ]
    return ProbeData(
        folds=tuple(
            fold_data(job, part, train, start=start)
            for part, start in zip(folds, starts, strict=True)
        ),
        train_values=column_subset(train_values, columns),
        train_labels=train.labels,
        test_values=column_subset(test_values, columns),
    )


def _moved(
    weights: np.ndarray, intercepts: np.ndarray, before: np.ndarray | None, now: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Weights on the columns `before` as weights on the columns `now`: each common feature
    keeps its weight, the others start at 0."""
    if before is None or now is None or np.array_equal(before, now):
        return weights, intercepts
    moved = np.zeros((now.size, weights.shape[1]))
    _, in_before, in_now = np.intersect1d(before, now, return_indices=True)
    moved[in_now] = weights[in_before]
    return moved, intercepts


def refit_data(
    job: Job,
    train: Part,
    system: ridge.RidgeSystem | DiscriminantSystem,
    representation: str = RAW,
) -> ProbeData:
    """What a closed-form solver's refit reads: its system on the training split's columns of
    the job, and the test images' (no folds: its strength is chosen)."""
    return ProbeData(
        folds=(),
        train_values=None,
        train_labels=train.labels,
        test_values=row_values(job, train, representation, 1),
        train_system=system,
    )


def _common_columns(
    fold_columns: np.ndarray | None, train_columns: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The positions of the features both column sets hold, in each; None where they are the
    same set (every column, or one layer's)."""
    if fold_columns is None or np.array_equal(fold_columns, train_columns):
        return None
    _, in_fold, in_train = np.intersect1d(fold_columns, train_columns, return_indices=True)
    return in_fold, in_train
