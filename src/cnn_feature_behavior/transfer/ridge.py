"""Closed-form ridge regression on one-hot targets: the fast linear probe of the transfer evaluation.

Per embedding (a set J of columns of one training matrix X, centred on its training mean):
minimise |X_J W + 1 b^T - Y|^2 + alpha |W|^2 over W and the unpenalised intercept b, Y the
one-hot class indicators; predict the class of the largest score. alpha = 1 / C, so that C weighs
the data against the penalty as in scikit-learn's LogisticRegression (larger C, less penalty).

Why hand-written rather than scikit-learn's RidgeClassifier: every embedding of a split (each
layer, the full network, every ranked or random selection) is a column subset of one training
matrix, so its Gram matrix X_J^T X_J is a principal submatrix of one Gram matrix X^T X computed
once (primal form, used when an embedding has no more features than training images); with more
features than images the n x n kernel X_J X_J^T is smaller (dual form). Each C then costs one
Cholesky factorisation of the embedding's system, no iterations, and the solution is exact
(Golub and Van Loan; the linear evaluators of big_vision's fewshot_lsr.py fit the same way).

The Gram matrix is a float32 product (half the time of float64) of standardised, centred values;
the systems are factorised in float64, Fortran-ordered (LAPACK's own order: a C-ordered array
would be copied or transposed first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh
from threadpoolctl import threadpool_limits


@dataclass
class RidgeData:
    """One training matrix, centred, with its one-hot targets and (on first need) Gram matrix."""

    values: np.ndarray  # (n, d) float32, as given (not copied)
    mean: np.ndarray  # (d,) float64 training mean
    targets: np.ndarray  # (n, classes) float64 one-hot, centred
    target_mean: np.ndarray  # (classes,)
    classes: np.ndarray  # the class of each target column
    # BLAS threads of the matrix products (factorisations run on one: see RidgeSystem.weights).
    threads: int | None = None
    _gram: np.ndarray | None = field(default=None, repr=False)

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
        """X^T X of the centred values, (d, d) float64, computed once (X^T X - n m m^T: no
        centred copy of X; the values are standardised or three-valued, so no cancellation)."""
        if self._gram is None:
            with threadpool_limits(limits=self.threads):
                product = self.values.T @ self.values
            gram = np.asfortranarray(product, dtype=np.float64)
            gram -= self.n_images * np.outer(self.mean, self.mean)
            self._gram = gram
        return self._gram


class RidgeSystem:
    """The normal equations of one embedding (columns of a RidgeData), solved for any C."""

    def __init__(self, data: RidgeData, columns: np.ndarray | None):
        self.data = data
        self.columns = columns
        design = data.values if columns is None else data.values[:, columns]
        self.primal = design.shape[1] <= data.n_images
        if self.primal:
            gram = data.gram()
            self.matrix = gram if columns is None else gram[np.ix_(columns, columns)]
            # X^T Yc = Xc^T Yc: the centred targets sum to zero.
            self.right = (design.T @ data.targets.astype(np.float32)).astype(np.float64)
        else:
            mean = data.mean if columns is None else data.mean[columns]
            self.design = design - mean.astype(np.float32)
            # A float32 product: a float64 copy of the design would take 1.2 GB at caltech256's
            # size; where rounding leaves the (rank n - 1, centred) kernel indefinite at a tiny
            # penalty, weights() solves through the eigendecomposition.
            with threadpool_limits(limits=data.threads):
                product = self.design @ self.design.T
            self.matrix = np.asfortranarray(product, dtype=np.float64)
            self.right = data.targets

    def weights(self, c: float) -> tuple[np.ndarray, np.ndarray]:
        """(features, classes) weights on the embedding's values and the intercepts, for C."""
        system = self.matrix.copy(order="F")
        system.flat[:: system.shape[0] + 1] += 1.0 / float(c)
        # One thread: on a loaded 2-core machine a 2-thread Cholesky of 2,000 x 2,000 took 4 to
        # 17 s against 1.3 s on one (threads spin waiting for each other); products scale.
        with threadpool_limits(limits=1):
            try:
                factor = cho_factor(system, lower=True, overwrite_a=True, check_finite=False)
                solution = cho_solve(factor, self.right, check_finite=False)
            except LinAlgError:
                solution = self._eigen_solve(c)
        weights = solution if self.primal else self.design.T.astype(np.float64) @ solution
        mean = self.data.mean if self.columns is None else self.data.mean[self.columns]
        intercept = self.data.target_mean - mean @ weights
        return weights, intercept

    def _eigen_solve(self, c: float) -> np.ndarray:
        """(matrix + I / C)^-1 right through the eigendecomposition, eigenvalues clipped at 0:
        where rounding leaves a (semi-definite) Gram matrix slightly indefinite at small 1 / C."""
        eigenvalues, vectors = eigh(self.matrix, check_finite=False)
        shifted = np.clip(eigenvalues, 0.0, None) + 1.0 / float(c)
        return vectors @ ((vectors.T @ self.right) / shifted[:, None])


def scores(values: np.ndarray, weights: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """(images, classes) linear scores of uncentred values (a float32 product: a float64 copy
    of a test matrix would take gigabytes at caltech256's size)."""
    return (values @ weights.astype(values.dtype)).astype(np.float64) + intercept


def holdout_key(scored: np.ndarray, classes: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, minus the mean squared error to the one-hot targets): compared accuracy first."""
    accuracy = float(np.mean(classes[np.argmax(scored, axis=1)] == labels))
    one_hot = (labels[:, None] == classes[None, :]).astype(np.float64)
    return accuracy, -float(np.mean(np.sum((scored - one_hot) ** 2, axis=1)))
