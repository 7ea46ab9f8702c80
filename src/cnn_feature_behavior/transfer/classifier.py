"""The linear classifier of the transfer evaluation and its measures.

Default: scikit-learn's multinomial LogisticRegression (lbfgs, L2 penalty), its C chosen on the
training images only: fitted on a seeded stratified part of the training split along an
ascending C grid (warm starts), scored on the held-out rest by accuracy, ties broken by the
lower held-out log-loss (a handful of held-out images ties often, and the smallest C then
predicts the largest training class), the best C refitted on the whole training split: the
linear-probe protocol of Kornblith et al. (CVPR 2019).
Option: LinearSVC with C = 1, one-vs-rest (the FNE's public code), no selection.

Row space. With an L2 penalty the optimal weights lie in the span of the training rows (the loss
gradient is X^T (P - Y), the penalty's is w), so with fewer training images n than features d
the problem is solved exactly in n dimensions: for any Z with Z Z^T = X X^T (Cholesky of the
Gram matrix, or its eigendecomposition when singular), fitting on Z with the same C gives
coefficients a, and w = X^T Z^{-T} a has X w = Z a and |w| = |a|: the same objective, the
unpenalised intercept untouched, the same predictions on any image. Up to the solver's
tolerance the result is that of fitting on X; it costs one Gram matrix instead of d-wide lbfgs
iterations.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, eigh, solve_triangular
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

CLASSIFIERS = ("logistic_regression", "linear_svc")
# Eigenvalues of a singular Gram matrix below this share of the largest span no direction.
EIGEN_CUTOFF = 1e-10


@dataclass(frozen=True)
class ClassifierSettings:
    """How the classifier is fitted (the `transfer` parameters' classifier keys)."""

    classifier: str = "logistic_regression"
    c_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    holdout_fraction: float = 0.2
    max_iter: int = 300
    tol: float = 1e-4
    row_space: bool = True
    # Stop the ascending C path once this many C in a row score below the best so far.
    patience: int | None = 1
    svc_c: float = 1.0
    svc_max_iter: int = 1000

    def __post_init__(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ValueError(
                f"transfer.classifier must be one of {CLASSIFIERS}, got {self.classifier!r}"
            )
        if not self.c_grid or any(not float(c) > 0 for c in self.c_grid):
            raise ValueError(
                f"transfer.logistic_regression.c_grid must be C > 0, got {self.c_grid}"
            )
        if self.patience is not None and (int(self.patience) != self.patience or self.patience < 1):
            raise ValueError(
                f"transfer.logistic_regression.patience must be an integer >= 1 or null, "
                f"got {self.patience!r}"
            )
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(
                f"transfer.logistic_regression.holdout_fraction must lie in (0, 1), "
                f"got {self.holdout_fraction}"
            )


@dataclass
class FitResult:
    """One embedding's classifier: chosen C, test predictions and where the time went."""

    regularisation_c: float
    predictions: np.ndarray
    holdout_accuracy: dict[float, float] = field(default_factory=dict)
    selection_seconds: float = 0.0
    fit_seconds: float = 0.0
    n_iter: int = 0


def holdout_split(
    labels: np.ndarray, fraction: float, seed: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (fit, held-out) positions: round(fraction * n) of each class held out,
    at least 1 where the class has 2 images or more, and never the class's last image."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_held = min(max(int(round(fraction * members.size)), 1), members.size - 1)
        held.append(rng.permutation(members)[:n_held])
    held_out = np.sort(np.concatenate(held)) if held else np.empty(0, np.intp)
    return np.setdiff1d(np.arange(labels.size), held_out), held_out


Weights = Callable[[np.ndarray], np.ndarray]


def row_space_basis(values: np.ndarray, gram: np.ndarray) -> tuple[np.ndarray, Weights, Weights]:
    """Z with Z Z^T = gram = values values^T, and the maps between coefficients on Z and weights.

    to_weights takes (classes, r) coefficients a to (features, classes) float64 weights w with
    values w = Z a and |w| = |a| (see the module docstring); from_weights takes any weights to
    the coefficients of their projection on the row space (a starting point for the solver).
    """
    try:
        factor, _ = cho_factor(gram, lower=True, check_finite=False)
        lower = np.tril(factor)
        basis = lower

        def to_weights(coef: np.ndarray) -> np.ndarray:
            right = solve_triangular(lower, coef.T, trans="T", lower=True, check_finite=False)
            return values.T.astype(np.float64) @ right

        def from_weights(weights: np.ndarray) -> np.ndarray:
            scores = values.astype(np.float64) @ weights
            return solve_triangular(lower, scores, lower=True, check_finite=False).T

    except LinAlgError:
        # Fewer independent images than images (duplicates, constant rows): keep the spanned part.
        eigenvalues, vectors = eigh(gram, check_finite=False)
        keep = eigenvalues > EIGEN_CUTOFF * max(float(eigenvalues[-1]), 0.0)
        root = np.sqrt(eigenvalues[keep])
        basis = vectors[:, keep] * root
        inverse_root = vectors[:, keep] / root

        def to_weights(coef: np.ndarray) -> np.ndarray:
            return values.T.astype(np.float64) @ (inverse_root @ coef.T)

        def from_weights(weights: np.ndarray) -> np.ndarray:
            return (inverse_root.T @ (values.astype(np.float64) @ weights)).T

    return basis.astype(np.float32), to_weights, from_weights


def _gram(values: np.ndarray) -> np.ndarray:
    as_float64 = values.astype(np.float64)
    return as_float64 @ as_float64.T


class _Probe:
    """Logistic regression on one training matrix, in its row space where that is smaller."""

    def __init__(self, values: np.ndarray, labels: np.ndarray, settings: ClassifierSettings, gram):
        self.values, self.labels, self.settings = values, labels, settings
        if gram is not None:
            self.design, self.to_weights, self.from_weights = row_space_basis(values, gram)
        else:
            self.design, self.to_weights, self.from_weights = values, None, None
        self.model = LogisticRegression(
            C=float(settings.c_grid[0]), max_iter=settings.max_iter, tol=settings.tol,
            warm_start=True,
        )  # fmt: skip

    def start_from(self, weights: np.ndarray, intercept: np.ndarray) -> None:
        """Start the solver from (features, classes) weights and intercepts (same classes)."""
        coef = weights.T if self.from_weights is None else self.from_weights(weights)
        self.model.coef_ = coef.astype(self.design.dtype)
        self.model.intercept_ = intercept.astype(self.design.dtype)

    def fit(self, c: float) -> int:
        self.model.set_params(C=float(c))
        with warnings.catch_warnings():
            # A probe stopped at max_iter is still a probe; the iterations are reported instead.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.design, self.labels)
        return int(np.max(self.model.n_iter_))

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(features, classes) float64 weights on the values, and the intercepts."""
        coef = self.model.coef_.astype(np.float64)
        weights = coef.T if self.to_weights is None else self.to_weights(coef)
        return weights, self.model.intercept_.astype(np.float64)

    def decision(self, values: np.ndarray) -> np.ndarray:
        weights, intercept = self.weights()
        return values.astype(np.float64) @ weights + intercept

    def predict(self, values: np.ndarray) -> np.ndarray:
        return self.model.classes_[np.argmax(self.decision(values), axis=1)]

    def holdout_score(self, values: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(accuracy, minus the log-loss) on held-out images: compared accuracy first."""
        scores = self.decision(values)
        accuracy = float(np.mean(self.model.classes_[np.argmax(scores, axis=1)] == labels))
        scores -= scores.max(axis=1, keepdims=True)
        log_probability = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        # Every class has training images in the fit part (holdout_split keeps one back).
        position = np.searchsorted(self.model.classes_, labels)
        log_loss = -float(np.mean(log_probability[np.arange(labels.size), position]))
        return accuracy, -log_loss


def fit_logistic_regression(
    train_values: np.ndarray,
    train_labels: np.ndarray,
    test_values: np.ndarray,
    settings: ClassifierSettings,
    holdout: tuple[np.ndarray, np.ndarray],
) -> FitResult:
    """Choose C on the held-out part of the training split, refit on all of it, predict the test."""
    n_train, n_features = train_values.shape
    use_rows = settings.row_space and holdout[0].size < n_features
    gram = _gram(train_values) if use_rows else None
    fit_part, held_out = holdout

    start = time.perf_counter()
    probe = _Probe(
        train_values[fit_part],
        train_labels[fit_part],
        settings,
        gram[np.ix_(fit_part, fit_part)] if use_rows else None,
    )
    scores: dict[float, float] = {}
    best_weights, best_key, below_best = None, None, 0
    for c in sorted(float(c) for c in settings.c_grid):
        probe.fit(c)
        key = probe.holdout_score(train_values[held_out], train_labels[held_out])
        if best_key is None or key > best_key:
            chosen, best_weights, best_key, below_best = c, probe.weights(), key, 0
        elif key[0] < best_key[0]:
            # Patience counts C that lose accuracy; a tie that only loses log-loss does not.
            below_best += 1
        scores[c] = key[0]
        if settings.patience is not None and below_best >= settings.patience:
            break
    selected = time.perf_counter()

    final = _Probe(
        train_values, train_labels, settings, gram if n_train < n_features and use_rows else None
    )
    # The held-out fit at the chosen C is close to the refit: start the solver there.
    final.start_from(*best_weights)
    n_iter = final.fit(chosen)
    predictions = final.predict(test_values)
    return FitResult(
        regularisation_c=chosen,
        predictions=predictions,
        holdout_accuracy=scores,
        selection_seconds=selected - start,
        fit_seconds=time.perf_counter() - selected,
        n_iter=n_iter,
    )


def fit_linear_svc(
    train_values: np.ndarray,
    train_labels: np.ndarray,
    test_values: np.ndarray,
    settings: ClassifierSettings,
) -> FitResult:
    """LinearSVC (squared hinge, one-vs-rest) with the fixed C of the settings, no selection."""
    start = time.perf_counter()
    model = LinearSVC(C=float(settings.svc_c), max_iter=settings.svc_max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_values, train_labels)
    return FitResult(
        regularisation_c=float(settings.svc_c),
        predictions=model.predict(test_values),
        fit_seconds=time.perf_counter() - start,
        n_iter=int(np.max(model.n_iter_)),
    )


def fit_classifier(
    train_values: np.ndarray,
    train_labels: np.ndarray,
    test_values: np.ndarray,
    settings: ClassifierSettings,
    holdout: tuple[np.ndarray, np.ndarray],
) -> FitResult:
    """The settings' classifier fitted on the training matrix, with its test predictions."""
    if settings.classifier == "linear_svc":
        return fit_linear_svc(train_values, train_labels, test_values, settings)
    return fit_logistic_regression(train_values, train_labels, test_values, settings, holdout)


def accuracies(labels: np.ndarray, predictions: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean over the classes present in labels of each class's accuracy)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.size == 0:
        raise ValueError("no test images to measure the classifier on")
    correct = labels == predictions
    per_class = [float(np.mean(correct[labels == c])) for c in np.unique(labels)]
    return float(np.mean(correct)), float(np.mean(per_class))


def c_grid(values: Sequence[float]) -> tuple[float, ...]:
    """The C grid as sorted floats, duplicates removed."""
    return tuple(sorted({float(v) for v in values}))
