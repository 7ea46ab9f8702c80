"""One train/test split's transfer evaluation: every embedding, fitted on the training images only.

Compared (each standardised with the training images' statistics): each layer alone, the full
network (continuous), the FNE (three-valued), and curves of DKS-ranked and seeded random
selections of the full network's features, continuous and three-valued. Nothing fitted sees the
test images: standardisation, DKS, t+ / t-, the ranking, the held-out part that chooses C and the
classifier itself all use the training rows alone; test labels are only read by the measures.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from cnn_feature_behavior.transfer.classifier import (
    ClassifierSettings,
    accuracies,
    c_grid,
    fit_classifier,
    holdout_split,
)
from cnn_feature_behavior.transfer.embeddings import FNE_NEGATIVE, FNE_POSITIVE, Standardisation
from cnn_feature_behavior.transfer.embeddings import fne_values as three_valued
from cnn_feature_behavior.transfer.features import (
    RANKINGS,
    curve_sizes,
    dks_ranking,
    random_order,
)

logger = logging.getLogger(__name__)

LAYER, FULL_NETWORK, FNE, RANDOM = "layer", "full_network", "fne", "random"
DEFAULT_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
RESULT_COLUMNS = (
    "embedding",
    "layer",
    "selection",
    "fraction",
    "n_features",
    "classifier",
    "regularisation_c",
    "n_train",
    "n_test",
    "accuracy",
    "mean_per_class_accuracy",
)
TRANSFER_KEYS = {
    "split",
    "classifier",
    "logistic_regression",
    "linear_svc",
    "fne",
    "ranking",
    "fractions",
    "seed",
    "workers",
    "maps",
}


@dataclass(frozen=True)
class TransferSettings:
    """The `transfer` parameters (less `split` and `maps`) with dks.bins and calibration's."""

    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)
    fne_positive: float = FNE_POSITIVE
    fne_negative: float = FNE_NEGATIVE
    ranking: str = "dks_count"
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    seed: int = 2018
    workers: int | None = None
    dks_bins: int | None = 100
    dks_workers: int | None = None
    calibration_repetitions: int = 1
    calibration_seed: int = 2018

    @classmethod
    def from_params(
        cls,
        transfer: dict[str, Any],
        dks: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
    ) -> TransferSettings:
        """Settings from the parameters blocks; unknown `transfer` keys are errors."""
        unknown = sorted(set(transfer) - TRANSFER_KEYS)
        if unknown:
            raise ValueError(f"transfer: unknown key(s) {unknown}; known: {sorted(TRANSFER_KEYS)}")
        logistic = dict(transfer.get("logistic_regression") or {})
        svc = dict(transfer.get("linear_svc") or {})
        known_logistic = {"c_grid", "holdout_fraction", "max_iter", "tol", "row_space", "patience"}
        if set(logistic) - known_logistic or set(svc) - {"C", "max_iter"}:
            raise ValueError(
                f"transfer.logistic_regression keys must be among {sorted(known_logistic)} and "
                f"transfer.linear_svc keys among ['C', 'max_iter']; got {sorted(logistic)}, "
                f"{sorted(svc)}"
            )
        classifier = ClassifierSettings(
            classifier=transfer.get("classifier", "logistic_regression"),
            **{k: v for k, v in logistic.items() if k != "c_grid"},
            **({"c_grid": c_grid(logistic["c_grid"])} if "c_grid" in logistic else {}),
            **({"svc_c": float(svc["C"])} if "C" in svc else {}),
            **({"svc_max_iter": int(svc["max_iter"])} if "max_iter" in svc else {}),
        )
        fne = dict(transfer.get("fne") or {})
        if set(fne) - {"positive", "negative"}:
            raise ValueError(f"transfer.fne keys are 'positive' and 'negative', got {sorted(fne)}")
        ranking = transfer.get("ranking", "dks_count")
        if ranking not in RANKINGS:
            raise ValueError(f"transfer.ranking must be one of {RANKINGS}, got {ranking!r}")
        dks, calibration = dks or {}, calibration or {}
        return cls(
            classifier=classifier,
            fne_positive=float(fne.get("positive", FNE_POSITIVE)),
            fne_negative=float(fne.get("negative", FNE_NEGATIVE)),
            ranking=ranking,
            fractions=tuple(float(f) for f in transfer.get("fractions", DEFAULT_FRACTIONS)),
            seed=int(transfer.get("seed", 2018)),
            workers=_workers(transfer.get("workers")),
            dks_bins=dks.get("bins", 100),
            dks_workers=dks.get("workers"),
            calibration_repetitions=int(calibration.get("repetitions", 1)),
            calibration_seed=int(calibration.get("seed", 2018)),
        )


def _workers(value: Any) -> int | None:
    if value is not None and (int(value) != value or value < 1):
        raise ValueError(f"transfer.workers must be an integer >= 1 or null, got {value!r}")
    return None if value is None else int(value)


@dataclass
class SplitEvaluation:
    """The result rows of one split, what was fitted (for inspection), and each fit's timing."""

    results: pd.DataFrame
    fitted: dict[str, Any]
    timings: pd.DataFrame


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
    is_train = np.asarray(is_train, bool)
    labels = np.asarray(labels, np.int64)
    layers = np.asarray(layers).astype(str)
    if is_train.all() or not is_train.any():
        raise ValueError(
            f"a split needs training and test images, got {int(is_train.sum())} train and "
            f"{int((~is_train).sum())} test"
        )
    train_labels, test_labels = labels[is_train], labels[~is_train]
    n_features = values.shape[1]

    started = time.perf_counter()
    standardisation = Standardisation.fit(values[is_train])
    standardised = standardisation.apply(values)
    train_std, test_std = standardised[is_train], standardised[~is_train]
    del standardised
    train_fne = three_valued(train_std, settings.fne_positive, settings.fne_negative)
    test_fne = three_valued(test_std, settings.fne_positive, settings.fne_negative)
    prepared = time.perf_counter()
    ranking = dks_ranking(
        values[is_train],
        train_labels,
        class_names,
        bins=settings.dks_bins,
        repetitions=settings.calibration_repetitions,
        seed=settings.calibration_seed,
        ranking=settings.ranking,
        workers=settings.dks_workers,
        feature_names=feature_names,
    )
    ranked = time.perf_counter()
    shuffled = random_order(n_features, seed)
    holdout = holdout_split(train_labels, settings.classifier.holdout_fraction, seed)

    matrices = {FULL_NETWORK: (train_std, test_std), FNE: (train_fne, test_fne)}
    jobs: list[tuple[dict[str, Any], str, np.ndarray]] = []
    for layer in pd.unique(layers):
        row = {"embedding": LAYER, "layer": layer, "selection": None, "fraction": None}
        jobs.append((row, FULL_NETWORK, np.flatnonzero(layers == layer)))
    for kind in (FULL_NETWORK, FNE):
        row = {"embedding": kind, "layer": None, "selection": None, "fraction": None}
        jobs.append((row, kind, np.arange(n_features)))
    selections = {}
    for kind in (FULL_NETWORK, FNE):
        for selection, order in ((settings.ranking, ranking.order), (RANDOM, shuffled)):
            for fraction, k in curve_sizes(n_features, settings.fractions):
                kept = np.sort(order[:k])
                selections[(selection, fraction)] = kept
                row = {"embedding": kind, "layer": None, "selection": selection}
                jobs.append(({**row, "fraction": fraction}, kind, kept))

    # Identical feature sets (every selection at 100%) are fitted once.
    distinct: dict[tuple[str, bytes], tuple[str, np.ndarray]] = {}
    for _, kind, columns in jobs:
        distinct.setdefault((kind, columns.tobytes()), (kind, columns))

    def fit_one(kind: str, columns: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
        train_matrix, test_matrix = matrices[kind]
        if columns.size < n_features:
            train_matrix, test_matrix = train_matrix[:, columns], test_matrix[:, columns]
        fit = fit_classifier(train_matrix, train_labels, test_matrix, settings.classifier, holdout)
        accuracy, per_class = accuracies(test_labels, fit.predictions)
        measured = {
            "regularisation_c": fit.regularisation_c,
            "accuracy": accuracy,
            "mean_per_class_accuracy": per_class,
        }
        timing = {
            "selection_seconds": fit.selection_seconds,
            "fit_seconds": fit.fit_seconds,
            "n_iter": fit.n_iter,
            "holdout_accuracy": fit.holdout_accuracy,
        }
        return measured, timing

    # One BLAS thread per fit and one fit per core: the solver's many small products spend more
    # time synchronising BLAS threads than computing (tenfold on a loaded machine).
    workers = settings.workers or os.cpu_count() or 1
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(fit_one, *job) for key, job in distinct.items()}
        fitted_sets = {key: future.result() for key, future in futures.items()}

    rows, timings = [], []
    for row, kind, columns in jobs:
        measured, timing = fitted_sets[(kind, columns.tobytes())]
        logger.info(
            "%s %s %s %s: %d features, C = %g, accuracy %.3f (%.1f s)",
            row["embedding"],
            row["layer"] or "",
            row["selection"] or "",
            "" if row["fraction"] is None else f"{row['fraction']:g}",
            columns.size,
            measured["regularisation_c"],
            measured["accuracy"],
            timing["selection_seconds"] + timing["fit_seconds"],
        )
        common = {**row, "n_features": int(columns.size)}
        rows.append(
            {
                **common,
                "classifier": settings.classifier.classifier,
                "n_train": int(train_labels.size),
                "n_test": int(test_labels.size),
                **measured,
            }
        )
        timings.append({**common, **timing})

    results = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    fitted = {
        "mean": standardisation.mean,
        "scale": standardisation.scale,
        "t_plus": ranking.t_plus,
        "t_minus": ranking.t_minus,
        "dks": ranking.dks,
        "ranking": ranking.order,
        "random": shuffled,
        "selections": selections,
        "holdout": holdout,
        "seconds": {
            "standardisation_and_fne": prepared - started,
            "dks_ranking": ranked - prepared,
            "classifiers": time.perf_counter() - ranked,
        },
    }
    return SplitEvaluation(results=results, fitted=fitted, timings=pd.DataFrame(timings))
