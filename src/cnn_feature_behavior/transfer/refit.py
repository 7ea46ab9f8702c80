"""One configuration of the transfer evaluation refitted on a training split, as a linear map:
what an export (issue 26) turns into a model that classifies new images.

`refit_configuration` fits exactly what the evaluation fits for that configuration on the same
training images and settings: the same folds (`c_selection.seed` with the repetition), the same
statistics of the training split (standardisation, FNE thresholds, DKS rankings and ANOVA-F
order), the same solver (chosen on the full network's size) and the same C search (a curve
point after its curve's smaller sizes, each search starting from the previous size's choice).

Configurations, as the report names them:
- `layer:<name>`: one layer's features;
- `full_network`: every feature, continuous; `fne`: every feature, three-valued;
- `selection:<ranking>:<fraction>` (`selection:dks_cover:0.05`), or
  `selection:<ranking>:<fraction>:fne` for the three-valued curve: the first round(fraction x
  features) features of a DKS ranking or of `anova_f`, ranked on the training split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from cnn_feature_behavior.transfer.classifier import RAW, ROOT, ROOT_RAW, FitResult
from cnn_feature_behavior.transfer.embeddings import Standardisation, fne_values, signed_root
from cnn_feature_behavior.transfer.evaluation import (
    check_inputs,
    evaluation_solver,
    prepare,
    training_folds,
)
from cnn_feature_behavior.transfer.features import ANOVA_F, RANKINGS, random_order
from cnn_feature_behavior.transfer.jobs import FNE, FULL_NETWORK, LAYER, Job, Part, embedding_jobs
from cnn_feature_behavior.transfer.scheduling import fit_jobs
from cnn_feature_behavior.transfer.settings import DISCRIMINANT, RIDGE, TransferSettings


@dataclass(frozen=True)
class LinearMap:
    """Class scores of an embedding's images from one configuration's refit.

    scores = transform(values[:, columns]) @ weights + intercepts, where transform takes the
    values as `representation` says (RAW: as they are; ROOT: their signed square roots
    sign(x) sqrt(|x|); ROOT_RAW: the square roots' columns, then the values' columns, so that
    mean, scale and weights have 2 x columns rows), standardises with (mean, scale) and, for a
    three-valued configuration, maps above fne[0] to 1 and below fne[1] to -1 (else 0); the
    predicted class is classes[argmax]. `columns` are positions in the embedding's features
    (manifest order); `regularisation` the solver's own strength ({"regularisation_c": C} for
    the logistic regression, {"ridge_alpha": alpha} for ridge, {"shrinkage": lambda} for the
    discriminant)."""

    configuration: str
    columns: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    fne: tuple[float, float] | None
    weights: np.ndarray
    intercepts: np.ndarray
    classes: np.ndarray
    class_names: tuple[str, ...]
    solver: str
    regularisation: dict[str, float]
    representation: str = RAW

    def transform(self, values: np.ndarray) -> np.ndarray:
        """The configuration's features of (images, all features) values, as its classifier sees
        them."""
        selected = np.asarray(values)[:, self.columns]
        if self.representation == ROOT:
            selected = signed_root(selected)
        elif self.representation == ROOT_RAW:
            selected = np.hstack([signed_root(selected), selected])
        standardised = (selected - self.mean) / self.scale
        return standardised if self.fne is None else fne_values(standardised, *self.fne)

    def scores(self, values: np.ndarray) -> np.ndarray:
        """(images, classes) class scores of (images, all features) values."""
        return self.transform(values) @ self.weights + self.intercepts

    def predict(self, values: np.ndarray) -> np.ndarray:
        return self.classes[np.argmax(self.scores(values), axis=1)]


def refit_configuration(
    values: np.ndarray,
    labels: np.ndarray,
    layers: Sequence[str],
    class_names: Sequence[str],
    configuration: str,
    settings: TransferSettings,
    repetition: int = 0,
    feature_names: Sequence[str] | None = None,
) -> LinearMap:
    """The evaluation's refit of `configuration` (module docstring) on a training split: its
    images' values ((images, features) float32, the embedding's columns in manifest order),
    labels (0..C-1) and each feature's layer. `repetition` seeds the folds as the evaluation's
    repetition of that number."""
    is_train = np.ones(len(labels), bool)
    inputs = check_inputs(values, labels, is_train, layers, class_names, feature_names, test=False)
    target, curve = configuration_jobs(configuration, inputs.layers, settings)
    n_features = inputs.values.shape[1]
    orders = [random_order(n_features, [settings.seed, repetition, 0])]
    train_rows, no_rows = np.arange(len(labels)), np.empty(0, np.intp)
    folds = [
        prepare(inputs, fit, held, settings, orders)
        for fit, held in training_folds(inputs.labels, settings, repetition)
    ]
    train = prepare(inputs, train_rows, no_rows, settings, orders)
    solver = evaluation_solver(inputs.labels, n_features, settings)
    fitted = fit_jobs(curve, folds, train, solver, settings, keep_maps=True)[target.key()]
    columns = target.columns(train)
    columns = np.arange(n_features) if columns is None else columns
    kind_fne = (settings.fne.positive, settings.fne.negative) if target.kind == FNE else None
    standardisation = map_standardisation(train, fitted.representation, columns)
    return LinearMap(
        configuration=configuration,
        columns=columns,
        mean=standardisation.mean,
        scale=standardisation.scale,
        fne=kind_fne,
        weights=fitted.weights,
        intercepts=fitted.intercepts,
        classes=np.unique(inputs.labels),
        class_names=tuple(str(name) for name in class_names),
        solver=solver,
        regularisation=regularisation(fitted),
        representation=fitted.representation,
    )


def map_standardisation(train: Part, representation: str, columns: np.ndarray) -> Standardisation:
    """The training split's statistics of the columns as the map's transform takes them
    (ROOT_RAW: the square roots' and then the values')."""
    parts = {
        RAW: [train.standardisation],
        ROOT: [train.root_standardisation],
        ROOT_RAW: [train.root_standardisation, train.standardisation],
    }[representation]
    return Standardisation(
        np.concatenate([fitted.mean[columns] for fitted in parts]),
        np.concatenate([fitted.scale[columns] for fitted in parts]),
    )


def regularisation(fitted: FitResult) -> dict[str, float]:
    """The solver's own strength under its own name (the results' column)."""
    if fitted.solver == RIDGE:
        return {"ridge_alpha": 1.0 / fitted.regularisation_c}
    if fitted.solver == DISCRIMINANT:
        return {"shrinkage": fitted.shrinkage}
    return {"regularisation_c": fitted.regularisation_c}


def configuration_jobs(
    configuration: str, layers: np.ndarray, settings: TransferSettings
) -> tuple[Job, list[Job]]:
    """The evaluation's job of a configuration and the jobs fitted to reach it (a curve point:
    its curve's sizes up to it, in turn); unknown names are errors listing the known forms."""
    one_curve = replace(settings, baselines=(ANOVA_F,), random_draws=1)
    parts = configuration.split(":")
    wanted = None
    if parts[0] == LAYER and len(parts) == 2:
        wanted = {"embedding": LAYER, "layer": parts[1]}
    elif parts[0] in (FULL_NETWORK, FNE) and len(parts) == 1:
        wanted = {"embedding": parts[0], "selection": None}
    elif parts[0] == "selection" and len(parts) in (3, 4) and parts[2:3]:
        ranking, kind = parts[1], FNE if parts[3:] == ["fne"] else FULL_NETWORK
        if ranking not in (*RANKINGS, ANOVA_F) or parts[3:] not in ([], ["fne"]):
            wanted = None
        else:
            wanted = {"embedding": kind, "selection": ranking, "fraction": _fraction(parts[2])}
            if ranking in RANKINGS:
                one_curve = replace(one_curve, rankings=(ranking,))
    jobs = embedding_jobs(layers, one_curve) if wanted else []
    matching = [job for job in jobs if all(job.row[k] == v for k, v in wanted.items())]
    if not matching:
        raise ValueError(
            f"unknown configuration {configuration!r}: expected layer:<name> (layers "
            f"{list(dict.fromkeys(layers.tolist()))}), full_network, fne, or "
            f"selection:<ranking>:<fraction>[:fne] with a ranking among "
            f"{[*RANKINGS, ANOVA_F]} and a fraction among {list(settings.fractions)}"
        )
    target = matching[0]
    if target.row["selection"] is None:
        return target, [target]
    curve = [
        job for job in jobs
        if job.kind == target.kind and job.row["selection"] == target.row["selection"]
        and job.n_features() <= target.n_features()
    ]  # fmt: skip
    return target, curve


def _fraction(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
