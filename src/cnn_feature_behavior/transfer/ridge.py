"""Closed-form ridge regression on one-hot targets: the fast linear probe of the transfer evaluation.

Per embedding (a set J of columns of one training matrix X, centred on its training mean):
minimise |X_J W + 1 b^T - Y|^2 + alpha |W|^2 over W and the unpenalised intercept b, Y the
one-hot class indicators; predict the class of the largest score. alpha = 1 / C, so that C weighs
the data against the penalty as in scikit-learn's LogisticRegression (larger C, less penalty).

Why hand-written rather than scikit-learn's RidgeClassifier: every embedding of a split (each
layer, the full network, every ranked or random selection) is a column subset of one training
matrix, so its Gram matrix X_J^T X_J is a principal submatrix of one Gram matrix X^T X computed
once (primal form); with many more features than images (DUAL_SHARE) the n x n kernel
X_J X_J^T is smaller (dual form). Each C then costs one
Cholesky factorisation of the embedding's system, no iterations, and the solution is exact
(Golub and Van Loan; the linear evaluators of big_vision's fewshot_lsr.py fit the same way).

The Gram matrix X^T X (and X^T Y) is summed over blocks of rows, each centred and cast to
float64, with BLAS's symmetric rank-k update (dsyrk: one triangle, so the float64 product costs
about what a full float32 one does). Why float64: a float32 product's rounding (about 2e-3
absolute on 4,000 standardised rows, growing with the rows) leaves the rank-deficient systems of
wide embeddings (features >= images) indefinite at small 1 / C, and each such system then needed
an eigendecomposition: most of the time at caltech256's size. The systems are factorised in
float64, Fortran-ordered (LAPACK's own order: a C-ordered array would be copied first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh
from scipy.linalg.blas import dsyrk

from cnn_feature_behavior.transfer.blas import blas_threads

# Rows per block of the float64 Gram sums (about 200 MB of a 12,416-feature matrix).
GRAM_ROW_BLOCK = 2048
# Systems from this size on are factorised on every BLAS thread, smaller ones on one (their
# threads would spend more time waiting for each other than computing).
THREADED_SYSTEM = 2048
# The dual form (n x n kernel) is used where an embedding has more than this many times as many
# features as training images: it then saves a factorisation several times larger; closer to
# the images, the primal form reads its system out of the shared Gram matrix at no cost.
DUAL_SHARE = 2.0


def centred_products(
    values: np.ndarray, mean: np.ndarray, targets: np.ndarray, threads: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(X_c^T X_c, X_c^T Y) of the values centred on `mean`: (d, d) float64 Fortran-ordered,
    symmetric, and (d, classes) float64, summed over row blocks in float64 (module docstring)."""
    n_features = values.shape[1]
    gram = np.zeros((n_features, n_features), order="F")
    cross = np.zeros((n_features, targets.shape[1]))
    with blas_threads(threads):
        for start in range(0, values.shape[0], GRAM_ROW_BLOCK):
            block = values[start : start + GRAM_ROW_BLOCK].astype(np.float64) - mean
            # block.T is Fortran-ordered: dsyrk reads it without a copy.
            gram = dsyrk(1.0, block.T, beta=1.0, c=gram, trans=0, lower=1, overwrite_c=1)
            cross += block.T @ targets[start : start + GRAM_ROW_BLOCK]
    fill_upper(gram)
    return gram, cross


def fill_upper(lower: np.ndarray) -> None:
    """Copy the lower triangle onto the upper one, a band of columns at a time (no d x d
    temporary)."""
    size = lower.shape[0]
    for start in range(0, size, GRAM_ROW_BLOCK):
        stop = min(start + GRAM_ROW_BLOCK, size)
        diagonal = lower[start:stop, start:stop]
        diagonal[np.triu_indices(stop - start, 1)] = diagonal.T[np.triu_indices(stop - start, 1)]
        lower[start:stop, stop:] = lower[stop:, start:stop].T


@dataclass
class RidgeData:
    """One training matrix with its mean, centred one-hot targets and (on first need) the
    centred products of ridge's normal equations."""

    values: np.ndarray  # (n, d) float32, as given (not copied)
    mean: np.ndarray  # (d,) float64 training mean
    targets: np.ndarray  # (n, classes) float64 one-hot, centred
    target_mean: np.ndarray  # (classes,)
    classes: np.ndarray  # the class of each target column
    # BLAS threads of the products and of the large factorisations.
    threads: int | None = None
    _products: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def of(
        cls, values: np.ndarray, labels: np.ndarray, classes: np.ndarray, threads: int | None = None
    ) -> RidgeData:
        """`values` (float32, not copied) with their mean, `labels` one-hot over `classes`."""
        values = np.asarray(values, dtype=np.float32)
        mean = values.mean(axis=0, dtype=np.float64)
        one_hot = (np.asarray(labels)[:, None] == np.asarray(classes)[None, :]).astype(np.float64)
        target_mean = one_hot.mean(axis=0)
        return cls(values, mean, one_hot - target_mean, target_mean, np.asarray(classes), threads)

    @property
    def n_images(self) -> int:
        return self.values.shape[0]

    def gram(self) -> np.ndarray:
        """X_c^T X_c, (d, d) float64, computed once."""
        return self._centred_products()[0]

    def cross(self) -> np.ndarray:
        """X_c^T Y_c = X^T Y_c (the centred targets sum to zero), (d, classes), computed once."""
        return self._centred_products()[1]

    def _centred_products(self) -> tuple[np.ndarray, np.ndarray]:
        if self._products is None:
            self._products = centred_products(self.values, self.mean, self.targets, self.threads)
        return self._products


def primal(n_features: int, n_images: int) -> bool:
    """Whether a system is solved on its features' Gram matrix (else on its images')."""
    return n_features <= DUAL_SHARE * n_images


class RidgeSystem:
    """The normal equations of one embedding (columns of a RidgeData), solved for any C."""

    def __init__(self, data: RidgeData, columns: np.ndarray | None):
        self.data = data
        self.columns = columns
        n_features = data.values.shape[1] if columns is None else columns.size
        self.primal = primal(n_features, data.n_images)
        self._eigen: tuple[np.ndarray, np.ndarray] | None = None
        if self.primal:
            gram = data.gram()
            self.matrix = gram if columns is None else gram[np.ix_(columns, columns)]
            self.right = data.cross() if columns is None else data.cross()[columns]
        else:
            design = data.values if columns is None else data.values[:, columns]
            mean = data.mean if columns is None else data.mean[columns]
            self.design = design.astype(np.float64) - mean  # few images: a small matrix
            with blas_threads(data.threads):
                self.matrix = np.asfortranarray(self.design @ self.design.T)
            self.right = data.targets

    @property
    def large(self) -> bool:
        """Whether a factorisation takes seconds: on every BLAS thread, and worth saving."""
        return self.matrix.shape[0] >= THREADED_SYSTEM

    def weights(self, c: float) -> tuple[np.ndarray, np.ndarray]:
        """(features, classes) weights on the embedding's values and the intercepts, for C."""
        size = self.matrix.shape[0]
        threads = self.data.threads if self.large else 1
        with blas_threads(threads):
            solution = None
            if self._eigen is None:
                system = self.matrix.copy(order="F")
                system.flat[:: size + 1] += 1.0 / float(c)
                try:
                    factor = cho_factor(system, lower=True, overwrite_a=True, check_finite=False)
                    solution = cho_solve(factor, self.right, check_finite=False)
                except LinAlgError:
                    del system
            if solution is None:
                solution = self._eigen_solve(c)
            weights = solution if self.primal else self.design.T @ solution
        mean = self.data.mean if self.columns is None else self.data.mean[self.columns]
        intercept = self.data.target_mean - mean @ weights
        return weights, intercept

    def _eigen_solve(self, c: float) -> np.ndarray:
        """(matrix + I / C)^-1 right through the eigendecomposition (computed once, then used
        for every C), eigenvalues clipped at 0: where rounding leaves a (semi-definite) Gram
        matrix slightly indefinite at small 1 / C."""
        if self._eigen is None:
            eigenvalues, vectors = eigh(self.matrix, check_finite=False)
            self._eigen = (np.clip(eigenvalues, 0.0, None), vectors)
        eigenvalues, vectors = self._eigen
        return vectors @ ((vectors.T @ self.right) / (eigenvalues + 1.0 / float(c))[:, None])


def scores(values: np.ndarray, weights: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """(images, classes) linear scores of uncentred values (a float32 product: a float64 copy
    of a test matrix would take gigabytes at caltech256's size)."""
    return (values @ weights.astype(values.dtype)).astype(np.float64) + intercept


def holdout_key(scored: np.ndarray, classes: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, minus the mean squared error to the one-hot targets): compared accuracy first."""
    accuracy = float(np.mean(classes[np.argmax(scored, axis=1)] == labels))
    one_hot = (labels[:, None] == classes[None, :]).astype(np.float64)
    return accuracy, -float(np.mean(np.sum((scored - one_hot) ** 2, axis=1)))
