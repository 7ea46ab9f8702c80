"""The exported classifier as numbers: one configuration's linear map, refitted on a training split.

`LinearMap` is what the Keras model is built from (export/keras_model.py) and what its
predictions are checked against: the embedding's feature columns the classifier reads, their
standardisation (fitted on the training images), the FNE thresholds where the configuration is
three-valued, and the fitted weights and intercepts of each class.

`refit_linear_map` is the one place that reaches into the transfer evaluation: it refits a named
configuration on a training split as `transfer.evaluation.evaluate_split` fits that row (the
same fit part and held-out part choosing C, the same standardisation, FNE, rankings and solver),
and returns the linear map the evaluation keeps to itself. It reads a private step of the
classifier (`_Probe`, for the logistic regression's weights): the transfer evaluation is to
expose that refit as `transfer.refit.refit_configuration` (the same configurations, the
repetition seeding the folds), and this adapter then becomes a call to it whose `LinearMap` is
converted to this one.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from cnn_feature_behavior.transfer import ridge
from cnn_feature_behavior.transfer.classifier import (
    ProbeData,
    _Probe,
    choose_c,
    multinomial_coef,
)
from cnn_feature_behavior.transfer.embeddings import fne_values
from cnn_feature_behavior.transfer.evaluation import SplitInputs, prepare
from cnn_feature_behavior.transfer.features import random_order
from cnn_feature_behavior.transfer.jobs import (
    FNE,
    Job,
    Prepared,
    embedding_jobs,
    probe_data,
    solver_of,
)
from cnn_feature_behavior.transfer.multinomial import MultinomialLogisticRegression
from cnn_feature_behavior.transfer.named_embeddings import Configuration
from cnn_feature_behavior.transfer.settings import LINEAR_SVC, LOGISTIC, RIDGE, TransferSettings
from cnn_feature_behavior.transfer.splits import holdout_split


@dataclass(frozen=True)
class LinearMap:
    """A linear classifier on some feature columns of an embedding: scores = z W + b, where z is
    the columns standardised (and three-valued for the FNE) with the training images' statistics."""

    columns: np.ndarray  # (k,) positions of the features read, in the embedding's column order
    mean: np.ndarray  # (k,) training mean of each feature read
    scale: np.ndarray  # (k,) training standard deviation (1 where constant)
    fne_thresholds: tuple[float, float] | None  # (positive, negative); None: continuous
    weights: np.ndarray  # (k, classes)
    intercepts: np.ndarray  # (classes,)
    class_names: tuple[str, ...]  # the class of each weight column
    solver: str
    regularisation_c: float
    c_at_grid_edge: bool = False

    def standardised(self, values: np.ndarray) -> np.ndarray:
        """The read columns of `values` (images, every embedding column), as the classifier sees
        them: standardised, three-valued for the FNE; float32."""
        z = ((np.asarray(values)[:, self.columns] - self.mean) / self.scale).astype(np.float32)
        return z if self.fne_thresholds is None else fne_values(z, *self.fne_thresholds)

    def scores(self, values: np.ndarray) -> np.ndarray:
        """(images, classes) scores of embedding rows (float32 products, as the evaluation's)."""
        product = self.standardised(values) @ self.weights.astype(np.float32)
        return product.astype(np.float64) + self.intercepts

    def predict(self, values: np.ndarray) -> np.ndarray:
        """The position (in class_names) of each row's highest score."""
        return np.argmax(self.scores(values), axis=1)


def refit_linear_map(
    inputs: SplitInputs,
    settings: TransferSettings,
    configuration: Configuration,
    repetition: int = 0,
) -> LinearMap:
    """ADAPTER to the transfer evaluation (module doc): `configuration` refitted on the training
    rows of `inputs` (`inputs.is_train`) as the evaluation's repetition `repetition` fits its row
    (seed [transfer.seed, repetition]).

    C is searched from the grid's middle (the evaluation starts a curve's point from the previous
    size's choice, and large ridge systems from the last one's), so on a held-out plateau the
    choice can differ from the evaluation's row; the card states the C refitted here."""
    seed = [settings.seed, int(repetition)]
    if configuration.selection is not None:
        settings = dataclasses.replace(settings, fractions=(configuration.fraction,))
    train_rows, test_rows = np.flatnonzero(inputs.is_train), np.flatnonzero(~inputs.is_train)
    fit_part, held_out = holdout_split(
        inputs.labels[train_rows], settings.c_selection.holdout_fraction, seed
    )
    fit = prepare(inputs, train_rows[fit_part], train_rows[held_out], settings)
    train = prepare(inputs, train_rows, test_rows, settings)
    shuffled = random_order(inputs.values.shape[1], seed)
    job = _job_of(embedding_jobs(inputs.layers, fit, train, shuffled, settings), configuration)
    if job.kind == FNE:
        for prepared in (fit, train):
            prepared.make_fne()
    solver = solver_of(job, train, settings)
    weights, intercepts, classes, chosen, at_edge = _fit(solver, job, fit, train, settings)
    columns = np.arange(inputs.values.shape[1]) if job.train_columns is None else job.train_columns
    return LinearMap(
        columns=np.asarray(columns, np.int64),
        mean=train.standardisation.mean[columns],
        scale=train.standardisation.scale[columns],
        fne_thresholds=train.fne_thresholds if job.kind == FNE else None,
        weights=weights,
        intercepts=intercepts,
        class_names=tuple(inputs.class_names[int(c)] for c in classes),
        solver=solver,
        regularisation_c=float(chosen),
        c_at_grid_edge=bool(at_edge),
    )


def _job_of(jobs: list[Job], configuration: Configuration) -> Job:
    for job in jobs:
        if Configuration.of_row(job.row) == configuration:
            return job
    layers = sorted({job.row["layer"] for job in jobs if job.row["layer"] is not None})
    raise ValueError(
        f"export.embedding: {configuration.spelling!r} is not a configuration of this "
        f"embedding (its layers: {', '.join(layers)})"
    )


Fitted = tuple[np.ndarray, np.ndarray, np.ndarray, float, bool]


def _fit(
    solver: str, job: Job, fit: Prepared, train: Prepared, settings: TransferSettings
) -> Fitted:
    """(weights, intercepts, classes, C, whether C is at the grid's edge) of the job's solver:
    the C the dispatch chooses (`classifier.choose_c`), refitted keeping the weights."""
    if solver == RIDGE:
        return _fit_ridge(job, fit, train, settings)
    data = probe_data(job, fit, train)
    if solver == LOGISTIC:
        return _fit_logistic(data, settings)
    if solver == LINEAR_SVC:
        return _fit_linear_svc(data, settings)
    raise ValueError(f"unknown solver {solver!r}")


def _fit_ridge(job: Job, fit: Prepared, train: Prepared, settings: TransferSettings) -> Fitted:
    """classifier's ridge refit, keeping its weights."""
    classes = np.unique(train.labels)
    threads = settings.workers or os.cpu_count() or 1
    systems = tuple(
        ridge.RidgeSystem(part.ridge_data(job.kind, classes, threads), columns)
        for part, columns in ((fit, job.fit_columns), (train, job.train_columns))
    )
    choice = choose_c(probe_data(job, fit, train, systems), RIDGE, settings)
    weights, intercepts = systems[1].weights(choice.regularisation_c)
    return weights, intercepts, classes, choice.regularisation_c, choice.c_at_grid_edge


def _fit_logistic(data: ProbeData, settings: TransferSettings) -> Fitted:
    """classifier's logistic regression refit (from the fit part's weights at the chosen C),
    keeping its weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        choice = choose_c(data, LOGISTIC, settings)
        final = _Probe(
            data.train_values,
            data.train_labels,
            settings,
            MultinomialLogisticRegression,
            settings.logistic_regression.relative_tol,
        )
        weights, intercepts = choice.start_weights
        final.start_from(data.on_train_columns(weights), intercepts)
        final.fit(choice.regularisation_c)
    weights, intercepts = final.weights()
    return weights, intercepts, final.model.classes_, choice.regularisation_c, choice.c_at_grid_edge


def _fit_linear_svc(data: ProbeData, settings: TransferSettings) -> Fitted:
    """classifier's LinearSVC (fixed C, one-vs-rest), keeping its weights."""
    model = LinearSVC(C=float(settings.linear_svc.C), max_iter=settings.linear_svc.max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data.train_values, data.train_labels)
    coef = multinomial_coef(model.coef_.astype(np.float64))
    intercepts = multinomial_coef(model.intercept_.astype(np.float64)[:, None])[:, 0]
    return coef.T, intercepts, model.classes_, float(settings.linear_svc.C), False
