"""The linear classifiers of the transfer evaluation, the choice of their C, and their measures.

Solvers (`transfer.classifier`; one fits every row of an evaluation, so that the rows a
sentence compares are fitted alike):
- `logistic_regression`: multinomial logistic regression (L2; scikit-learn's LogisticRegression
  objective and solution, fitted by L-BFGS on float32 products in multinomial.py, which says
  why), converged (tol 1e-6 by default; the refit also stops once its weights are provably
  within `relative_tol`, 1%, of the optimum's): the linear-probe protocol of Kornblith et al.
  (CVPR 2019).
- `discriminant` (the large-scale path, SCALE_PATH): regularised (shrinkage) linear
  discriminant analysis (discriminant.py) on the standardised signed square roots of the
  continuous values (the FNE's values as they are), its shrinkage chosen by the folds' pooled
  held-out accuracy, ties by mean log-loss; on continuous rows of at most
  `discriminant.root_raw_max_features` features the same folds also score the square roots and
  the raw values side by side (ROOT_RAW) and keep the better key, ties to the roots alone
  (`representations`). One Cholesky factorisation per shrinkage, Gram matrices shared by every
  embedding of a part of the training split. On 34 rows of the real Caltech-101 (where ridge
  fell up to 0.20 below a converged, tuned logistic regression) benchmarks/bench_scale_path.py
  measured the method at most 0.0069 below it (docs/transfer.md).
- `ridge`: closed-form ridge regression on one-hot targets (ridge.py), the former large-scale
  path, available on request.
- `auto` (default): the logistic regression where it is affordable on the evaluation's widest
  design, the full network (training images^2 x features, or images where the row space is
  used, x classes <= `logistic_regression.budget`), else the large-scale path; decided once
  per evaluation (`solver_for`). Before, the rule was applied row by row, and the solver changed
  inside one comparison: on the real Caltech-101, logistic regression on the layers and curve
  points up to 25%, ridge beyond, and ridge fell 0.085 below it on conv1_2 and 0.19 on random
  1% (docs/transfer.md).
- `linear_svc`: LinearSVC with a fixed C, one-vs-rest (the FNE's public code), no selection.

One dispatch for the evaluation, the tests and the benchmarks: `solver_for` names the solver,
`choose_c` chooses its C by cross-validation and `refit` refits it on the training split
(`fit_probe`: both in turn). The closed-form solvers' folds are scored one after the other by
scheduling.py with the same `score_fold` and `choose_from_scores`, so that one fold's Gram
matrix is held at a time.

C is chosen on the training images only, by stratified k-fold cross-validation
(splits.stratified_folds): each fold's training part is standardised, three-valued and ranked
with its own statistics, and its held-out images scored with them. Criterion: the mean over the
folds of the held-out loss, the log-loss for the logistic regression (accuracy ties on a few
held-out images, and five disjoint held-out fifths of the real Caltech-101's conv4_3 chose C =
1, 10, 0.1, 100 and 0.1 by accuracy, C = 1 on all five by log-loss), ridge's own squared error
for ridge; ties to the smaller C. The discriminant's shrinkage is the exception: its posteriors
are over-confident, and held-out log-loss chose 0.1 on the real Caltech-101's low layers where
1e-4 was best (docs/scale_path.md), so its key is accuracy first. The logistic regression's
search starts in the middle of `c_grid` (or at `start_c`, a curve's previous size's choice),
scores both neighbours, walks towards the better one while it improves, and extends the grid
tenfold past an edge up to `widen` times; ridge scores its grid widened `widen` times on each
side, the discriminant its whole shrinkage grid. A
choice at the edge is flagged (`c_at_grid_edge`). The chosen C is refitted on the whole
training split (the logistic regression from the folds' mean weights at that C), and the refit's
linear map kept in the FitResult.

Row space (logistic regression only). With an L2 penalty the optimal weights lie in the span of
the training rows, so with n training images and d features the problem is solved exactly in n
dimensions: for any Z with Z Z^T = X X^T (Cholesky of the Gram matrix, or its
eigendecomposition when singular), fitting on Z with the same C gives coefficients a, and
w = X^T Z^{-T} a has X w = Z a and |w| = |a|: the same objective and predictions. It is used only
where it saves: n <= `ROW_SPACE_SHARE` x d (the n x n Gram matrix and its factor cost about as
much as the iterations saved when n is close to d).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, eigh, solve_triangular
from scipy.linalg.blas import dsyrk as syrk
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from cnn_feature_behavior.transfer import discriminant, ridge
from cnn_feature_behavior.transfer.multinomial import MultinomialLogisticRegression
from cnn_feature_behavior.transfer.settings import (
    AUTO,
    DISCRIMINANT,
    LINEAR_SVC,
    LOGISTIC,
    RIDGE,
    TransferSettings,
)

# The solvers fitted in closed form from Gram matrices (fold after fold: scheduling.py).
CLOSED_FORM = (RIDGE, DISCRIMINANT)
# The large-scale path: what `auto` fits where the logistic regression is unaffordable.
SCALE_PATH = DISCRIMINANT
# The values a classifier sees of a continuous row: the standardised values (RAW), the
# standardised signed square roots (ROOT), or both side by side (ROOT_RAW, every feature twice);
# the FNE's three values are RAW.
RAW, ROOT, ROOT_RAW = "raw", "root", "root+raw"
# Eigenvalues of a singular Gram matrix below this share of the largest span no direction.
EIGEN_CUTOFF = 1e-10
# The row space pays where the training images are at most this share of the features.
ROW_SPACE_SHARE = 0.5


@dataclass
class FitResult:
    """One embedding's classifier: its solver, the chosen C, the cross-validated scores at that
    C, the refit's linear map and test predictions, and where the time went.

    `weights` ((features, classes) float64) and `intercepts` ((classes,)) map the row's columns of
    the training split's standardised (or three-valued) values to class scores; the predicted
    class is the largest score's (the classes in sorted label order)."""

    regularisation_c: float
    predictions: np.ndarray
    solver: str = LOGISTIC
    c_at_grid_edge: bool = False
    # The refit reached its stop (tolerance, float64's floor or relative_tol), not max_iter nor
    # a failed line search (closed-form solvers: always).
    converged: bool = True
    # Mean held-out loss over the folds at the chosen C (the criterion: log-loss for the
    # logistic regression, the mean squared error to one-hot targets for ridge), at every C
    # scored, and the accuracies of the folds' pooled held-out predictions at the chosen C.
    cv_loss: float = np.nan
    cv_losses: dict[float, float] = field(default_factory=dict)
    cv_accuracy: float = np.nan
    cv_mean_per_class_accuracy: float = np.nan
    selection_seconds: float = 0.0
    fit_seconds: float = 0.0
    n_iter: int = 0
    # The logistic regression's folds' mean (weights, intercepts) at the chosen C on the
    # training split's columns, between choose_c and refit: where the refit starts.
    start_weights: tuple[np.ndarray, np.ndarray] | None = None
    # Each fold's (weights on its columns, intercepts) at the chosen C: where the same fold of
    # the curve's next size starts.
    fold_weights: list[tuple[np.ndarray, np.ndarray]] | None = None
    weights: np.ndarray | None = None
    intercepts: np.ndarray | None = None
    # The discriminant's strength (regularisation_c is then NaN), and the values its row saw.
    shrinkage: float = np.nan
    representation: str = RAW


@dataclass(frozen=True)
class FoldData:
    """One fold of an embedding: its training part's matrix (standardised, three-valued and
    ranked with the part's own statistics) or, for a closed-form solver, its system of normal
    equations, and the fold's held-out images scored with the same statistics."""

    values: np.ndarray | None
    labels: np.ndarray
    held_values: np.ndarray
    held_labels: np.ndarray
    system: ridge.RidgeSystem | discriminant.DiscriminantSystem | None = None
    # Where the fold's first fit starts ((weights on its columns, intercepts)): the same fold's
    # solution at the curve's previous size; None: zeros.
    start: tuple[np.ndarray, np.ndarray] | None = None
    # Where the fold's columns differ from the training split's (a ranking's selection on
    # each): the positions of their common features in each, (fold, train).
    common_columns: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class ProbeData:
    """One embedding's matrices: its folds (choosing C), the whole training split (the refit)
    and the test images (with the training split's statistics). A closed-form solver reads
    `train_system` (and each fold's `system`) instead of the values, which it leaves None (a
    column subset is a copy)."""

    folds: tuple[FoldData, ...]
    train_values: np.ndarray | None
    train_labels: np.ndarray
    test_values: np.ndarray
    train_system: ridge.RidgeSystem | discriminant.DiscriminantSystem | None = None

    def on_train_columns(self, fold: FoldData, weights: np.ndarray) -> np.ndarray:
        """(fold columns, classes) weights as weights on the training split's columns: each
        common feature keeps its weight, the others start at 0."""
        if fold.common_columns is None:
            return weights
        fold_positions, train_positions = fold.common_columns
        moved = np.zeros((self.test_values.shape[1], weights.shape[1]))
        moved[train_positions] = weights[fold_positions]
        return moved

    def held_labels(self) -> np.ndarray:
        """Every fold's held-out labels, in fold order (the folds' pooled predictions' order)."""
        return np.concatenate([fold.held_labels for fold in self.folds])


Key = tuple[float, ...]


def search_c(
    score: Callable[[float], Key],
    grid: Sequence[float],
    widen: int,
    start: float | None = None,
    exhaustive: bool = False,
) -> tuple[float, dict[float, Key], bool]:
    """The C of the best held-out key: from the grid's middle (or the grid value nearest
    `start`, e.g. a similar embedding's choice; with `exhaustive`, the best of the whole grid),
    both neighbours are scored and the search walks towards the better one while it improves
    (ties to the smaller C); past an edge the grid extends tenfold, `widen` times at most.

    Returns (chosen C, every scored C's key, whether the choice is at the searched grid's edge).
    """
    grid = sorted(float(c) for c in grid)
    keys: dict[float, Key] = {}
    extended = {+1: 0, -1: 0}

    def key(c: float) -> Key:
        if c not in keys:
            keys[c] = score(c)
        return keys[c]

    def neighbour(c: float, step: int) -> float | None:
        """The next C in direction `step`, extending the grid past its edge where allowed."""
        index = grid.index(c) + step
        if 0 <= index < len(grid):
            return grid[index]
        if extended[step] >= widen:
            return None
        extended[step] += 1
        grid.insert(len(grid) if step > 0 else 0, c * 10.0**step)
        return grid[-1] if step > 0 else grid[0]

    best = grid[_starting_index(grid, start, exhaustive, lambda index: key(grid[index]))]
    around = [c for c in (neighbour(best, -1), neighbour(best, +1)) if c is not None]
    better = max(around, key=key, default=best)  # the first of equal keys: the smaller C
    if key(better) > key(best):
        step = +1 if better > best else -1
        best = better
        while (nxt := neighbour(best, step)) is not None and key(nxt) > key(best):
            best = nxt
    return best, keys, best in (grid[0], grid[-1])


def _starting_index(
    grid: list[float], start: float | None, exhaustive: bool, key_at: Callable[[int], Key]
) -> int:
    """Where the search starts: the grid's middle, the value nearest `start`, or (exhaustive)
    the best of the whole grid, ties to the smaller C."""
    if exhaustive:
        return max(range(len(grid)), key=lambda index: (key_at(index), -index))
    if start is not None:
        return int(np.argmin(np.abs(np.log(grid) - np.log(float(start)))))
    return len(grid) // 2


def closed_form_grid(solver: str, settings: TransferSettings) -> tuple[float, ...]:
    """The strengths a closed-form solver scores on every fold (each costs one factorisation,
    no walk: every fold's held-out scores are made while its Gram matrix is held, one fold
    after the other): ridge's C grid extended tenfold past each edge `c_selection.widen` times;
    the discriminant's shrinkage grid (bounded: (0, 1])."""
    if solver == DISCRIMINANT:
        return settings.discriminant.shrinkage_grid
    grid, widen = settings.ridge.c_grid, settings.c_selection.widen
    low = [grid[0] * 10.0**-step for step in range(widen, 0, -1)]
    high = [grid[-1] * 10.0**step for step in range(1, widen + 1)]
    return tuple(low) + tuple(grid) + tuple(high)


@dataclass(frozen=True)
class FoldScores:
    """One fold's held-out losses and predictions at each C of a closed-form solver's grid."""

    losses: np.ndarray
    predictions: tuple[np.ndarray, ...]


def score_fold(solver: str, fold: FoldData, grid: Sequence[float]) -> FoldScores:
    """A closed-form solver on one fold's system at every strength of `grid`, scored on its
    held-out images: the loss (ridge's own, the mean squared error to the one-hot targets; the
    discriminant's log-loss) and the predictions."""
    if solver == DISCRIMINANT:
        return _score_discriminant_fold(fold, grid)
    system = fold.system
    one_hot = (fold.held_labels[:, None] == system.data.classes[None, :]).astype(np.float64)
    losses, predictions = [], []
    for c in grid:
        weights, intercept = system.weights(c)
        scored = ridge.scores(fold.held_values, weights, intercept)
        losses.append(float(np.mean(np.sum((scored - one_hot) ** 2, axis=1))))
        predictions.append(system.data.classes[np.argmax(scored, axis=1)])
    return FoldScores(np.asarray(losses), tuple(predictions))


def _score_discriminant_fold(fold: FoldData, grid: Sequence[float]) -> FoldScores:
    """The discriminant on one fold's system at every shrinkage: held-out log-loss and
    predictions."""
    scored = [
        score_discriminant(fold.system, fold.held_values, fold.held_labels, shrinkage)
        for shrinkage in grid
    ]
    return FoldScores(np.array([loss for loss, _ in scored]), tuple(p for _, p in scored))


def score_discriminant(
    system: discriminant.DiscriminantSystem,
    held_values: np.ndarray,
    held_labels: np.ndarray,
    shrinkage: float,
) -> tuple[float, np.ndarray]:
    """The held-out log-loss and predictions of the discriminant fitted on a fold's `system` at
    `shrinkage`. Systems of THREADED_SYSTEM features or more are factorised in float32 (about
    2.5 times faster; these fits only rank the shrinkage values, the refit is float64)."""
    dtype = np.float32 if system.n_features >= ridge.THREADED_SYSTEM else np.float64
    model = system.fit(shrinkage, dtype)
    scored = model.scores(held_values)
    loss = discriminant.log_loss(scored, model.classes, held_labels)
    return loss, model.classes[np.argmax(scored, axis=1)]


def choose_from_scores(
    solver: str, grid: Sequence[float], scores: Sequence[FoldScores], held_labels: np.ndarray
) -> FitResult:
    """The strength of the best held-out key over the folds, with the folds' pooled
    predictions' accuracies there (`held_labels`: the folds' in fold order). Ridge: the lowest
    mean loss, ties to the smaller C; the discriminant: the highest pooled accuracy, ties by
    the lower mean log-loss, then to the smaller shrinkage."""
    mean_losses = np.mean([fold.losses for fold in scores], axis=0)
    pooled = [np.concatenate([fold.predictions[j] for fold in scores]) for j in range(len(grid))]
    if solver == DISCRIMINANT:
        keys = [(accuracies(held_labels, pooled[j])[0], -mean_losses[j]) for j in range(len(grid))]
        best = max(range(len(grid)), key=lambda j: (keys[j], -j))
    else:
        best = int(np.argmin(mean_losses))  # the first of equal losses: the smaller C
    cv_accuracy, cv_per_class = accuracies(held_labels, pooled[best])
    strength = {"shrinkage": float(grid[best])} if solver == DISCRIMINANT else {}
    return FitResult(
        regularisation_c=np.nan if solver == DISCRIMINANT else float(grid[best]),
        predictions=np.empty(0),
        solver=solver,
        c_at_grid_edge=best in (0, len(grid) - 1),
        cv_loss=float(mean_losses[best]),
        cv_losses={float(c): float(loss) for c, loss in zip(grid, mean_losses)},
        cv_accuracy=cv_accuracy,
        cv_mean_per_class_accuracy=cv_per_class,
        **strength,
    )


def walk_shrinkage(
    folds: Sequence[tuple[discriminant.DiscriminantSystem, np.ndarray, np.ndarray]],
    grid: Sequence[float],
    start: float | None = None,
) -> FitResult:
    """The discriminant's shrinkage by a walk over `grid` instead of every value (search_c:
    from the value nearest `start`, or the grid's middle, both neighbours scored, then towards
    the better while it improves), `folds` giving each fold's (system, held-out values,
    held-out labels). The choice is choose_from_scores' over the values scored: the walk's
    end, ties to the smaller shrinkage; at the grid's edge it is flagged."""
    scored: dict[float, list[tuple[float, np.ndarray]]] = {}
    held_labels = np.concatenate([labels for *_, labels in folds])

    def key(shrinkage: float) -> Key:
        scored[shrinkage] = [score_discriminant(*fold, shrinkage) for fold in folds]
        pooled = np.concatenate([predictions for _, predictions in scored[shrinkage]])
        mean_loss = float(np.mean([loss for loss, _ in scored[shrinkage]]))
        return accuracies(held_labels, pooled)[0], -mean_loss

    search_c(key, grid, widen=0, start=start)
    walked = sorted(scored)
    fold_scores = [
        FoldScores(
            np.array([scored[value][fold][0] for value in walked]),
            tuple(scored[value][fold][1] for value in walked),
        )
        for fold in range(len(folds))
    ]
    choice = choose_from_scores(DISCRIMINANT, walked, fold_scores, held_labels)
    return replace(choice, c_at_grid_edge=choice.shrinkage in (min(grid), max(grid)))


def representations(solver: str, continuous: bool, n_features: int, settings: TransferSettings):
    """The values a closed-form row's folds choose between (the first wins ties): the
    discriminant's square roots of a continuous row, with the roots and raw values side by
    side on rows of at most `discriminant.root_raw_max_features` features; else RAW (ridge's
    standardised values, the FNE's three values)."""
    if solver != DISCRIMINANT or not continuous:
        return (RAW,)
    if n_features <= settings.discriminant.root_raw_max_features:
        return (ROOT, ROOT_RAW)
    return (ROOT,)


def better_choice(choices: Sequence[FitResult]) -> FitResult:
    """Of one row's choices on different values (`representations`' order), the best
    cross-validated key: accuracy first, then the lower loss; ties to the first."""
    return max(choices, key=lambda choice: (choice.cv_accuracy, -choice.cv_loss))


def _choose_closed_form_c(data: ProbeData, solver: str, settings: TransferSettings) -> FitResult:
    start = time.perf_counter()
    grid = closed_form_grid(solver, settings)
    scores = [score_fold(solver, fold, grid) for fold in data.folds]
    choice = choose_from_scores(solver, grid, scores, data.held_labels())
    return replace(choice, selection_seconds=time.perf_counter() - start)


def _refit_closed_form(choice: FitResult, data: ProbeData) -> FitResult:
    """`choice` with its strength refitted on the training split's system, and its
    predictions."""
    start = time.perf_counter()
    system = data.train_system
    if choice.solver == DISCRIMINANT:
        model = system.fit(choice.shrinkage)
        weights, intercept = model.weights, model.intercepts
    else:
        weights, intercept = system.weights(choice.regularisation_c)
    scored = ridge.scores(data.test_values, weights, intercept)
    return replace(
        choice,
        predictions=system.data.classes[np.argmax(scored, axis=1)],
        weights=weights,
        intercepts=intercept,
        fit_seconds=time.perf_counter() - start,
    )


Weights = Callable[[np.ndarray], np.ndarray]


class RowSpace(NamedTuple):
    """A design Z for the row space and the maps between its coefficients and the weights."""

    basis: np.ndarray
    to_weights: Weights
    from_weights: Weights
    lower_triangular: bool  # Z is the Cholesky factor (products by trmm)


def gram_matrix(values: np.ndarray) -> np.ndarray:
    """values values^T in float64, its lower triangle only (syrk: half a product's work)."""
    as_float64 = np.asarray(values, np.float64)
    return syrk(1.0, as_float64.T, trans=1, lower=1)  # the C-ordered values: Fortran values.T


def row_space_basis(values: np.ndarray, gram: np.ndarray) -> RowSpace:
    """Z with Z Z^T = gram = values values^T (only gram's lower triangle is read), and the maps
    between coefficients on Z and weights.

    to_weights takes (classes, r) coefficients a to (features, classes) float64 weights w with
    values w = Z a and |w| = |a| (see the module docstring); from_weights takes any weights to
    the coefficients of their projection on the row space (a starting point for the solver).
    """
    try:
        factor, _ = cho_factor(gram, lower=True, check_finite=False)
        lower = np.tril(factor)
        basis, triangular = lower, True

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
        basis, triangular = vectors[:, keep] * root, False
        inverse_root = vectors[:, keep] / root

        def to_weights(coef: np.ndarray) -> np.ndarray:
            return values.T.astype(np.float64) @ (inverse_root @ coef.T)

        def from_weights(weights: np.ndarray) -> np.ndarray:
            return (inverse_root.T @ (values.astype(np.float64) @ weights)).T

    return RowSpace(basis.astype(values.dtype), to_weights, from_weights, triangular)


def use_row_space(n_images: int, n_features: int, settings: TransferSettings) -> bool:
    """Whether the row space saves: few training images against the features."""
    return settings.logistic_regression.row_space and n_images <= ROW_SPACE_SHARE * n_features


def multinomial_coef(coef: np.ndarray) -> np.ndarray:
    """(classes, ...) coefficients: scikit-learn's single binary row w becomes (-w/2, w/2), which
    has the same decision (class 1 where w x + b > 0) and probabilities."""
    return np.vstack([-coef / 2.0, coef / 2.0]) if coef.shape[0] == 1 else coef


class _Probe:
    """Logistic regression on one training matrix, in its row space where that saves."""

    def __init__(
        self,
        values: np.ndarray,
        labels: np.ndarray,
        settings: TransferSettings,
        estimator: type = MultinomialLogisticRegression,
        relative_tol: float = 0.0,
    ):
        self.values, self.labels, self.settings = values, labels, settings
        triangular = False
        if use_row_space(*values.shape, settings):
            space = row_space_basis(values, gram_matrix(values))
            self.design, self.to_weights, self.from_weights, triangular = space
        else:
            self.design, self.to_weights, self.from_weights = values, None, None
        options = {}  # MultinomialLogisticRegression's own (the reference's has none of them)
        if estimator is MultinomialLogisticRegression:
            options = {"lower_triangular": triangular, "relative_tol": relative_tol}
        solver = settings.logistic_regression
        self.model = estimator(
            C=1.0, max_iter=solver.max_iter, tol=solver.tol, warm_start=True, **options
        )

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """The solver's coefficients and intercepts (fit replaces them: no copy needed)."""
        return self.model.coef_, self.model.intercept_

    def restore(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        """Back to a state: its weights are the probe's (and the next fit's start)."""
        self.model.coef_, self.model.intercept_ = state

    def start_from(self, weights: np.ndarray, intercept: np.ndarray) -> None:
        """Start the solver from (features, classes) weights and intercepts (same classes)."""
        coef = weights.T if self.from_weights is None else self.from_weights(weights)
        if coef.shape[0] == 2:  # binary: scikit-learn keeps the difference only
            coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
        self.model.coef_ = coef.astype(self.design.dtype)
        self.model.intercept_ = intercept.astype(self.design.dtype)

    def fit(self, c: float) -> int:
        self.model.set_params(C=float(c))
        with warnings.catch_warnings():
            # A probe stopped at max_iter is still a probe; the iterations are reported instead.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.design, self.labels)
        return int(np.max(self.model.n_iter_))

    def converged(self) -> bool:
        """Whether the last fit converged (scikit-learn's own: short of max_iter)."""
        if hasattr(self.model, "converged_"):
            return bool(self.model.converged_)
        return bool(np.max(self.model.n_iter_) < self.model.max_iter)

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(features, classes) float64 weights on the values, and the intercepts."""
        coef = multinomial_coef(self.model.coef_.astype(np.float64))
        intercept = multinomial_coef(self.model.intercept_.astype(np.float64)[:, None])[:, 0]
        weights = coef.T if self.to_weights is None else self.to_weights(coef)
        return weights, intercept

    def decision(self, values: np.ndarray) -> np.ndarray:
        """(images, classes) float64 scores from float32 products: the values are float32, and
        casting the 6,149 test images of a 2,112-column design to float64 cost more than the
        product."""
        weights, intercept = self.weights()
        scores = np.asarray(values, np.float32) @ weights.astype(np.float32)
        return scores.astype(np.float64) + intercept

    def predict(self, values: np.ndarray) -> np.ndarray:
        return self.model.classes_[np.argmax(self.decision(values), axis=1)]

    def held_out(self, values: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """(mean log-loss, predictions) on held-out images."""
        scores = self.decision(values)
        predictions = self.model.classes_[np.argmax(scores, axis=1)]
        scores -= scores.max(axis=1, keepdims=True)
        log_probability = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        # Every class has training images in every fold's training part (stratified_folds).
        position = np.searchsorted(self.model.classes_, labels)
        return -float(np.mean(log_probability[np.arange(labels.size), position])), predictions


def _choose_logistic_c(
    data: ProbeData, settings: TransferSettings, start_c: float | None, estimator: type
) -> FitResult:
    """The C of the lowest mean held-out log-loss over the folds, searched from `start_c` (a
    similar embedding's choice; None: the grid's middle), each fold's fits warm-started from its
    previous C's; `start_weights`: the folds' mean weights at that C, where the refit starts."""
    start = time.perf_counter()
    relative_tol = settings.logistic_regression.selection_relative_tol
    probes = [
        _Probe(fold.values, fold.labels, settings, estimator, relative_tol) for fold in data.folds
    ]
    for probe, fold in zip(probes, data.folds, strict=True):
        if fold.start is not None:
            probe.start_from(*fold.start)
    states: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {}
    pooled: dict[float, np.ndarray] = {}

    def score(c: float) -> Key:
        losses, predictions = [], []
        for probe, fold in zip(probes, data.folds, strict=True):
            probe.fit(c)  # from the last C's solution (warm_start)
            loss, predicted = probe.held_out(fold.held_values, fold.held_labels)
            losses.append(loss)
            predictions.append(predicted)
        states[c], pooled[c] = [probe.state() for probe in probes], np.concatenate(predictions)
        return (-float(np.mean(losses)),)

    grid, widen = settings.logistic_regression.c_grid, settings.c_selection.widen
    chosen, keys, at_edge = search_c(score, grid, widen, start=start_c)
    cv_accuracy, cv_per_class = accuracies(data.held_labels(), pooled[chosen])
    fold_weights = _fold_weights(probes, states[chosen])
    return FitResult(
        regularisation_c=chosen,
        predictions=np.empty(0),
        solver=LOGISTIC,
        c_at_grid_edge=at_edge,
        cv_loss=-keys[chosen][0],
        cv_losses={c: -key[0] for c, key in keys.items()},
        cv_accuracy=cv_accuracy,
        cv_mean_per_class_accuracy=cv_per_class,
        selection_seconds=time.perf_counter() - start,
        start_weights=_mean_fold_weights(data, fold_weights),
        fold_weights=fold_weights,
    )


def _fold_weights(
    probes: Sequence[_Probe], states: Sequence[tuple[np.ndarray, np.ndarray]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each fold's (weights on its columns, intercepts) at one C (its state there)."""
    weights = []
    for probe, state in zip(probes, states, strict=True):
        probe.restore(state)
        weights.append(probe.weights())
    return weights


def _mean_fold_weights(
    data: ProbeData, fold_weights: Sequence[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """The folds' weights at one C, each on the training split's columns (feature by feature: a
    ranking's selection differs between a fold and the training split), and intercepts, averaged
    over the folds: close to the refit's solution."""
    weights = [
        data.on_train_columns(fold, fold_weight)
        for fold, (fold_weight, _) in zip(data.folds, fold_weights, strict=True)
    ]
    return np.mean(weights, axis=0), np.mean([b for _, b in fold_weights], axis=0)


def _refit_logistic(
    choice: FitResult, data: ProbeData, settings: TransferSettings, estimator: type
) -> FitResult:
    """`choice`'s C refitted on the whole training split from the folds' mean weights at that
    C; its linear map and test predictions."""
    start = time.perf_counter()
    # Not the folds' fits: stopped at relative_tol they flipped the choice between near-tied
    # C values (8 of 71 rows of the flowers102-sized benchmark, up to 0.0033 lower).
    relative_tol = settings.logistic_regression.relative_tol
    final = _Probe(data.train_values, data.train_labels, settings, estimator, relative_tol)
    final.start_from(*choice.start_weights)
    n_iter = final.fit(choice.regularisation_c)
    weights, intercepts = final.weights()
    return replace(
        choice,
        predictions=final.predict(data.test_values),
        converged=final.converged(),
        start_weights=None,
        weights=weights,
        intercepts=intercepts,
        fit_seconds=time.perf_counter() - start,
        n_iter=n_iter,
    )


def _linear_svc(values: np.ndarray, labels: np.ndarray, settings: TransferSettings) -> LinearSVC:
    model = LinearSVC(C=float(settings.linear_svc.C), max_iter=settings.linear_svc.max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(values, labels)


def _choose_linear_svc(data: ProbeData, settings: TransferSettings) -> FitResult:
    """LinearSVC's fixed C (the FNE's public code: nothing to choose), with its folds' pooled
    held-out accuracies at that C."""
    start = time.perf_counter()
    pooled = np.concatenate(
        [
            _linear_svc(fold.values, fold.labels, settings).predict(fold.held_values)
            for fold in data.folds
        ]
    )
    cv_accuracy, cv_per_class = accuracies(data.held_labels(), pooled)
    return FitResult(
        regularisation_c=float(settings.linear_svc.C),
        predictions=np.empty(0),
        solver=LINEAR_SVC,
        cv_accuracy=cv_accuracy,
        cv_mean_per_class_accuracy=cv_per_class,
        selection_seconds=time.perf_counter() - start,
    )


def _refit_linear_svc(choice: FitResult, data: ProbeData, settings: TransferSettings) -> FitResult:
    """LinearSVC (squared hinge, one-vs-rest) at the fixed C on the training split."""
    start = time.perf_counter()
    model = _linear_svc(data.train_values, data.train_labels, settings)
    weights = multinomial_coef(model.coef_.astype(np.float64)).T
    intercepts = multinomial_coef(model.intercept_.astype(np.float64)[:, None])[:, 0]
    return replace(
        choice,
        predictions=model.predict(data.test_values),
        converged=bool(np.max(model.n_iter_) < settings.linear_svc.max_iter),
        weights=weights,
        intercepts=intercepts,
        fit_seconds=time.perf_counter() - start,
        n_iter=int(np.max(model.n_iter_)),
    )


def solver_for(n_images: int, n_features: int, n_classes: int, settings: TransferSettings) -> str:
    """The solver of `transfer.classifier` for an evaluation whose widest design has this size:
    the setting's own, or for auto the logistic regression where it is affordable
    on that design (training images^2 x features, or images where the row space is used, x
    classes <= logistic_regression.budget), else the large-scale path (SCALE_PATH). One solver fits every row of an
    evaluation, so that the rows a sentence compares are fitted alike."""
    if settings.classifier != AUTO:
        return settings.classifier
    if use_row_space(n_images, n_features, settings):
        n_features = n_images
    # lbfgs's work per iteration grows with images x features x classes, and its iterations
    # with the images.
    affordable = (
        float(n_images) ** 2 * n_features * n_classes <= settings.logistic_regression.budget
    )
    return LOGISTIC if affordable else SCALE_PATH


def choose_c(
    data: ProbeData,
    solver: str,
    settings: TransferSettings,
    start_c: float | None = None,
    estimator: type = MultinomialLogisticRegression,
) -> FitResult:
    """The C of one embedding chosen by cross-validation on its folds, by `solver`, searched
    from `start_c` where given (no predictions yet: `refit` makes them). `estimator`: the
    logistic regression's (scikit-learn's LogisticRegression gives the reference)."""
    if solver in CLOSED_FORM:
        return _choose_closed_form_c(data, solver, settings)
    if solver == LOGISTIC:
        return _choose_logistic_c(data, settings, start_c, estimator)
    if solver == LINEAR_SVC:
        return _choose_linear_svc(data, settings)
    raise ValueError(f"unknown solver {solver!r}")


def refit(
    choice: FitResult,
    data: ProbeData,
    settings: TransferSettings,
    estimator: type = MultinomialLogisticRegression,
) -> FitResult:
    """`choice`'s solver refitted at its C on the training split, with its linear map and the
    test predictions."""
    if choice.solver in CLOSED_FORM:
        return _refit_closed_form(choice, data)
    if choice.solver == LOGISTIC:
        return _refit_logistic(choice, data, settings, estimator)
    if choice.solver == LINEAR_SVC:
        return _refit_linear_svc(choice, data, settings)
    raise ValueError(f"unknown solver {choice.solver!r}")


def fit_probe(
    data: ProbeData,
    solver: str,
    settings: TransferSettings,
    start_c: float | None = None,
    estimator: type = MultinomialLogisticRegression,
) -> FitResult:
    """One embedding's classifier: C chosen by cross-validation, refitted on the training split."""
    choice = choose_c(data, solver, settings, start_c, estimator)
    return refit(choice, data, settings, estimator)


def accuracies(labels: np.ndarray, predictions: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean over the classes present in labels of each class's accuracy)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.size == 0:
        raise ValueError("no test images to measure the classifier on")
    correct = labels == predictions
    per_class = [float(np.mean(correct[labels == c])) for c in np.unique(labels)]
    return float(np.mean(correct)), float(np.mean(per_class))
