"""Regularised linear discriminant analysis (LDA) from shared Gram matrices: the closed-form
classifier for transfer evaluations too large for a converged logistic regression.

Model (scikit-learn's `LinearDiscriminantAnalysis(solver="lsqr", shrinkage=λ)`): every class k
is Gaussian with its own mean μ_k and one covariance shared by all classes, the pooled
within-class covariance S = W / n (W the within-class scatter of the n training images) shrunk
towards a multiple of the identity,

    Σ_λ = (1 - λ) S + λ (tr S / d) I,    0 < λ <= 1;

the discriminant score of class k is δ_k(x) = x^T Σ_λ^-1 μ_k - μ_k^T Σ_λ^-1 μ_k / 2 + log π_k
(π_k the class's share of the training images), the posteriors are softmax(δ), and the
predicted class is the largest score. Unlike least squares on one-hot targets (ridge.py), LDA
does not mask classes whose means lie between others' along the few directions a narrow design
offers (Hastie, Tibshirani & Buja, JASA 1994; ESL 4.2-4.3): on 42 random features of the real
Caltech-101 ridge fell 0.19 below a tuned logistic regression.

Why hand-written rather than scikit-learn's LinearDiscriminantAnalysis: it recomputes the
covariance from the images for every fit, where every embedding of a split (each layer, the
full network, every ranked or random selection) is a column subset of one training matrix and
every cross-validation fold a row subset of it. Here the sufficient statistics are computed once
per kind of matrix (continuous, FNE): the scatter of the values around a fixed centre, summed
over row blocks in float64 (ridge.centred_products), and the class sums and counts. Then

- a column subset J reads the principal submatrix W_JJ and the rows J of the class sums;
- a fold (the training images less a held-out set H) is the whole data minus H's own products
  (`without`): W_f = W - G_H + Σ_k (s_k s_k^T / n_k - s_fk s_fk^T / n_fk), G_H the scatter of
  H around the same centre, s_k and s_fk the class sums before and after; no recomputation of
  the other images' products;
- a fold's own standardisation rescales the columns by a = (whole scale / fold scale): LDA on
  the fold's standardised values is LDA with S replaced by diag(a) S diag(a) and μ_k by a ∘ μ_k
  (the shift of the fold's centring cancels between the classes' scores), so one Gram matrix
  serves every fold's standardisation (`scale`);

and each (embedding, fold, λ) costs one Cholesky factorisation of Σ_λ and a solve with one
right-hand side per class, in float64.

API (one instance per kind of matrix and per part of the training split):

    data = DiscriminantData.of(values, labels, classes, threads=None)
    fold = data.without(held_out_rows)                   # a cross-validation fold's data
    system = fold.system(columns=None, scale=None)       # one embedding (column subset)
    model = system.fit(shrinkage)                        # -> Discriminant
    model.weights (features, classes), model.intercepts (classes,)
    model.scores(values), model.predict(values), model.log_loss(values, labels)

`values` are the rows of the kind's matrix the data was built from (float32, not copied);
the weights apply to those values as they are (uncentred, in the data's own scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.linalg.blas import dgemm, ssyrk

from cnn_feature_behavior.transfer import ridge
from cnn_feature_behavior.transfer.blas import blas_threads

# Values that are all integers of at most this magnitude (the FNE's) have their products summed
# in float32, exactly.
SMALL_INTEGER = 1


def _one_hot(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(images, classes) float64 indicators; a label outside `classes` is an error."""
    labels = np.asarray(labels)
    position = np.searchsorted(classes, labels)
    position = np.minimum(position, classes.size - 1)
    unknown = classes[position] != labels
    if unknown.any():
        raise ValueError(
            f"labels {np.unique(labels[unknown])[:10].tolist()} are not among the classes"
        )
    indicators = np.zeros((labels.size, classes.size))
    indicators[np.arange(labels.size), position] = 1.0
    return indicators


def small_integers(values: np.ndarray) -> bool:
    """Whether every value is an integer of magnitude <= SMALL_INTEGER (the FNE's -1, 0, 1)."""
    for start in range(0, len(values), ridge.GRAM_ROW_BLOCK):
        block = values[start : start + ridge.GRAM_ROW_BLOCK]
        if not (np.all(block == np.rint(block)) and np.all(np.abs(block) <= SMALL_INTEGER)):
            return False
    return True


def exact_products(
    values: np.ndarray, indicators: np.ndarray, threads: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(X^T X, X^T Y) of small-integer values, uncentred, as float64 (d, d) Fortran-ordered and
    (d, classes): summed in float32 (half float64's time), exact while every sum stays below
    2^24 (module docstring)."""
    n_features = values.shape[1]
    if len(values) * SMALL_INTEGER**2 >= 2**24:
        raise ValueError(f"{len(values)} images: float32 sums of their products are not exact")
    gram = np.zeros((n_features, n_features), np.float32, order="F")
    sums = np.zeros((n_features, indicators.shape[1]), np.float32)
    with blas_threads(threads):
        for start in range(0, len(values), ridge.GRAM_ROW_BLOCK):
            block = np.asarray(values[start : start + ridge.GRAM_ROW_BLOCK], np.float32)
            gram = ssyrk(1.0, block.T, beta=1.0, c=gram, trans=0, lower=1, overwrite_c=1)
            sums += block.T @ indicators[start : start + ridge.GRAM_ROW_BLOCK].astype(np.float32)
    gram = gram.astype(np.float64, order="F")
    ridge.fill_upper(gram)
    return gram, sums.astype(np.float64)


def _add_class_outer(
    scatter: np.ndarray, sums: np.ndarray, counts: np.ndarray, sign: float
) -> None:
    """scatter += sign Σ_k s_k s_k^T / n_k in place (a rank-classes product by dgemm: no
    d x d temporary)."""
    scaled = sums / np.sqrt(counts)
    dgemm(sign, scaled, scaled, beta=1.0, c=scatter, trans_b=True, overwrite_c=True)


@dataclass
class DiscriminantData:
    """The within-class scatter, class sums and counts of one training matrix, around a fixed
    centre (module docstring), and the rows they came from (for `without`)."""

    scatter: np.ndarray  # (d, d) float64 within-class scatter W, Fortran order, symmetric
    class_sums: np.ndarray  # (d, classes) float64 sums of (values - centre) per class
    counts: np.ndarray  # (classes,) images per class
    centre: np.ndarray  # (d,) float64
    classes: np.ndarray  # sorted class labels
    values: np.ndarray = field(repr=False)  # (n, d) the rows, as given (not copied)
    labels: np.ndarray = field(repr=False)
    # BLAS threads of the products and of the large factorisations.
    threads: int | None = None

    @classmethod
    def of(
        cls,
        values: np.ndarray,
        labels: np.ndarray,
        classes: np.ndarray,
        threads: int | None = None,
        centre: np.ndarray | None = None,
    ) -> DiscriminantData:
        """The statistics of `values` (float32 rows, not copied) labelled `labels` over the
        sorted `classes` (each needs an image), around `centre` (default: their mean)."""
        values = np.asarray(values, dtype=np.float32)
        classes = np.asarray(classes)
        indicators = _one_hot(labels, classes)
        counts = indicators.sum(axis=0)
        _check_counts(counts, classes)
        if centre is None and small_integers(values):
            centre = np.zeros(values.shape[1])
        elif centre is None:
            centre = values.mean(axis=0, dtype=np.float64)
        gram, sums = _products(values, centre, indicators, threads)
        with blas_threads(threads):
            _add_class_outer(gram, sums, counts, -1.0)
        return cls(gram, sums, counts, centre, classes, values, np.asarray(labels), threads)

    @property
    def n_images(self) -> int:
        return int(self.counts.sum())

    def without(self, rows: np.ndarray) -> DiscriminantData:
        """The data of every row but `rows` (positions in `values`): the held-out rows'
        products subtracted (module docstring), nothing else recomputed."""
        rows = np.asarray(rows)
        kept = np.ones(len(self.values), bool)
        kept[rows] = False
        held_indicators = _one_hot(self.labels[rows], self.classes)
        counts = self.counts - held_indicators.sum(axis=0)
        _check_counts(counts, self.classes)
        held_gram, held_sums = _products(
            self.values[rows], self.centre, held_indicators, self.threads
        )
        sums = self.class_sums - held_sums
        scatter = held_gram  # reused as the fold's scatter: no third d x d matrix
        np.subtract(self.scatter, held_gram, out=scatter)
        with blas_threads(self.threads):
            _add_class_outer(scatter, self.class_sums, self.counts, +1.0)
            _add_class_outer(scatter, sums, counts, -1.0)
        return DiscriminantData(
            scatter, sums, counts, self.centre, self.classes, self.values[kept],
            self.labels[kept], self.threads,
        )  # fmt: skip

    def system(
        self,
        columns: np.ndarray | None = None,
        scale: np.ndarray | None = None,
        keep: bool = False,
    ) -> DiscriminantSystem:
        """One embedding: the columns `columns` (None: all), each multiplied by `scale` (the
        data's columns' factors, e.g. a fold's standardisation relative to the data's). With
        `keep` the system keeps its rescaled block of the scatter between shrinkage values
        (fitting several: one extraction instead of one each; its memory while it lives)."""
        return DiscriminantSystem(self, columns, scale, keep)

    def compact(self) -> DiscriminantData:
        """These statistics with the scatter rounded to float32 (half the memory) and without
        the rows (no `without`): for fits in float32 that only rank shrinkage values, whose
        covariance is rounded to float32 anyway."""
        scatter = np.asarray(self.scatter, dtype=np.float32, order="F")
        # New empty arrays, not views: a view of the rows would keep them all in memory.
        no_values = np.empty((0, self.values.shape[1]), self.values.dtype)
        return replace(self, scatter=scatter, values=no_values, labels=self.labels[:0].copy())


def _products(values, centre, indicators, threads) -> tuple[np.ndarray, np.ndarray]:
    """The scatter around `centre` and the class sums: exact float32 sums where the centre is 0
    and the values small integers, float64 sums of centred blocks otherwise."""
    if not centre.any() and small_integers(values):
        return exact_products(values, indicators, threads)
    return ridge.centred_products(values, centre, indicators, threads)


def _check_counts(counts: np.ndarray, classes: np.ndarray) -> None:
    empty = classes[counts < 1]
    if empty.size:
        raise ValueError(f"LDA needs every class among the images; none of {empty[:10].tolist()}")


@dataclass(frozen=True)
class Discriminant:
    """Fitted LDA: scores = values @ weights + intercepts on the data's own values."""

    weights: np.ndarray  # (features, classes) float64
    intercepts: np.ndarray  # (classes,)
    classes: np.ndarray
    shrinkage: float

    def scores(self, values: np.ndarray) -> np.ndarray:
        """(images, classes) discriminant scores (float32 product, as ridge.scores)."""
        return ridge.scores(values, self.weights, self.intercepts)

    def predict(self, values: np.ndarray) -> np.ndarray:
        return self.classes[np.argmax(self.scores(values), axis=1)]

    def log_loss(self, values: np.ndarray, labels: np.ndarray) -> float:
        """Mean -log posterior of each image's class (`labels` among the classes)."""
        return log_loss(self.scores(values), self.classes, labels)


def log_loss(scores: np.ndarray, classes: np.ndarray, labels: np.ndarray) -> float:
    """Mean -log softmax(scores) of each image's own class. The log-sum-exp by hand, shifted by
    each row's largest score: scipy.special.logsumexp is seven times slower on (5,120, 256)
    scores (its checks), and every fold's fit at every shrinkage is scored."""
    position = np.searchsorted(classes, labels)
    own = scores[np.arange(len(labels)), position]
    top = scores.max(axis=1)
    shifted = scores - top[:, None]
    np.exp(shifted, out=shifted)
    return float(np.mean(np.log(shifted.sum(axis=1)) + top - own))


def principal_submatrix(matrix: np.ndarray, index: np.ndarray) -> np.ndarray:
    """matrix[index][:, index] of a symmetric Fortran-ordered matrix, Fortran-ordered: rows of
    its C-ordered transpose, then columns of those (four times faster than numpy.ix_ at 6,208
    of 12,416); the C-ordered result, transposed, is the Fortran-ordered one by symmetry."""
    rows = np.take(matrix.T, index, axis=0)
    return np.take(rows, index, axis=1).T


class DiscriminantSystem:
    """One embedding (columns of a DiscriminantData, rescaled), solved for any shrinkage."""

    def __init__(
        self,
        data: DiscriminantData,
        columns: np.ndarray | None,
        scale: np.ndarray | None,
        keep: bool = False,
    ):
        self.data, self.columns, self.keep = data, columns, keep
        self._block: np.ndarray | None = None
        every = np.arange(data.scatter.shape[0])
        self._index = every if columns is None else np.asarray(columns)
        self.scale = (
            np.ones(self._index.size) if scale is None else np.asarray(scale, float)[self._index]
        )
        counts = data.counts
        # Class means in the rescaled coordinates, (features, classes). Uncentred, as
        # scikit-learn's: centred ones change every class's score of an image by the same
        # amount (the same posteriors), but not by nothing.
        means = data.centre[self._index, None] + data.class_sums[self._index] / counts
        self.means = means * self.scale[:, None]
        self.log_priors = np.log(counts / counts.sum())

    @property
    def n_features(self) -> int:
        return self._index.size

    def scatter_block(self, dtype: type = np.float64) -> np.ndarray:
        """The within-class scatter of the system's columns, rescaled, in `dtype`, Fortran
        order: the data's own matrix where no column is left out nor rescaled (not to be
        written), else a copy, kept for the next shrinkage where the system was made with
        `keep`."""
        if self._block is not None and self._block.dtype == dtype:
            return self._block
        scatter = self.data.scatter
        if self.columns is not None:
            scatter = principal_submatrix(scatter, self._index)
        block = np.asarray(scatter, dtype=dtype, order="F")
        if not np.all(self.scale == 1.0):
            block = block.copy(order="F") if block is self.data.scatter else block
            block *= self.scale[:, None].astype(dtype)
            block *= self.scale[None, :].astype(dtype)
        if self.keep:
            self._block = block
        return block

    def _private_block(self, dtype: type) -> bool:
        """Whether scatter_block(dtype) would be a copy nobody else holds (written in place)."""
        same = self.data.scatter.dtype == dtype
        return not self.keep and not (self.columns is None and same and np.all(self.scale == 1.0))

    def covariance(self, shrinkage: float, dtype: type = np.float64) -> np.ndarray:
        """Σ_λ in the rescaled coordinates, (features, features) in `dtype`, Fortran order."""
        if not 0.0 < float(shrinkage) <= 1.0:
            raise ValueError(f"LDA shrinkage must lie in (0, 1], got {shrinkage!r}")
        block = self.scatter_block(dtype)
        n_images = self.data.n_images
        target = float(np.trace(block, dtype=np.float64)) / (n_images * self.n_features)
        if not target > 0:
            raise ValueError(
                "LDA: every column of this embedding is constant on the training images"
            )
        factor = dtype((1.0 - float(shrinkage)) / n_images)
        if self._private_block(dtype):
            covariance = np.multiply(block, factor, out=block)  # no second d x d matrix
        else:
            covariance = np.multiply(block, factor, order="F")
        covariance.flat[:: self.n_features + 1] += dtype(float(shrinkage) * target)
        return covariance

    def fit(self, shrinkage: float, dtype: type = np.float64) -> Discriminant:
        """The discriminant at `shrinkage` (0 < λ <= 1): one Cholesky factorisation, in
        `dtype` (float32: about 2.5 times faster on one core, for fits that only rank the
        shrinkage values; its relative error grows with the condition number, at most
        1 / λ times the largest eigenvalue over the mean one)."""
        covariance = self.covariance(shrinkage, dtype)
        threads = self.data.threads if self.n_features >= ridge.THREADED_SYSTEM else 1
        with blas_threads(threads):
            try:
                factor = cho_factor(covariance, lower=True, overwrite_a=True, check_finite=False)
            except LinAlgError as error:
                raise LinAlgError(
                    f"LDA: the shrunk covariance of {self.n_features} features is not positive "
                    f"definite at shrinkage {shrinkage}"
                ) from error
            solved = cho_solve(factor, self.means.astype(dtype), check_finite=False)
        solved = solved.astype(np.float64, copy=False)
        weights = solved * self.scale[:, None]
        intercepts = -0.5 * np.einsum("fk,fk->k", self.means, solved) + self.log_priors
        return Discriminant(weights, intercepts, self.data.classes, float(shrinkage))
