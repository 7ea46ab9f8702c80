"""Multinomial logistic regression with an L2 penalty on float32 matrices, fitted by L-BFGS.

The objective is scikit-learn's (`LogisticRegression`, lbfgs): the mean cross-entropy of the
softmax of X W^T + b over the n training images plus |W|^2 / (2 C n), the intercepts b not
penalised; with two classes, its binomial model (one weight row, class 1 where w x + b > 0).
The tests hold the solution to scikit-learn's converged float64 one.

Why hand-written: the transfer evaluation fits hundreds of these probes, and scikit-learn's
solver spends most of their time outside the arithmetic they need. Measured at the
flowers102 size (1,632 images, 102 classes, one BLAS thread, scikit-learn 1.9):
- its per-sample softmax is a scalar loop: 4.7 ms an iteration on 42 features, where the
  vectorised one here and the two products take 1.1 ms;
- on wide designs its products mix float32 data with float64 weights, and scipy's L-BFGS-B
  (written for bounds) takes about 16 ms an iteration of 215,000 weights: 47 to 55 ms an
  iteration on 2,112 features against 33 ms here (float32 products, a numpy two-loop recursion);
- L-BFGS-B holds the GIL: two fits on two threads ran 1.56x faster than one after the other,
  1.86x here.

Float32 products give the loss to about 1e-7 of its value, too coarse to see the last steps'
decrease near the optimum. There the line search also accepts a step whose loss stays within
that noise where the slope along the direction falls (the approximate Wolfe conditions of
Hager and Zhang, SIAM J. Optim. 2005). The noise is counted from the lowest loss so far, so
that steps within it cannot add up to a climb. Where no step passes, the fit goes on in float64
products (`MultinomialLoss.refine`); a line search that fails in float64 ends the fit, as
scipy's does, and is not convergence: like a fit stopped at max_iter it warns
(scikit-learn's ConvergenceWarning) and the model's `converged_` is False. A fit converges at
max |gradient| <= tol, or where a float64 step lowers the loss by less than float64 can see.

With `relative_tol` > 0 a fit also stops once its weights are provably that close to the
optimum's, relatively (`MultinomialLoss.close_enough`): max |gradient| <= tol is blind to the
scale of the problem, strict where C is small and the optimum is sharp, loose where C is large.
On the refits of the flowers102-sized evaluation, 1% made the whole evaluation 1.17x faster.

A lower-triangular design (the Cholesky factor of the row space, `lower_triangular`) is
multiplied by trmm: half a general product's work, 1.5x faster an evaluation at 1,632 images.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import get_blas_funcs
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning

ARMIJO = 1e-4  # sufficient decrease, as in scipy's line searches
SLOPE_DROP = 0.9  # approximate Wolfe: the slope's magnitude must fall below this share
FLOAT32_NOISE = 1e-6  # float32 products' error in the loss, relative to the loss
HALVINGS = 30
FTOL = 64 * np.finfo(np.float64).eps  # scikit-learn's relative decrease that ends a fit


@dataclass
class MultinomialLoss:
    """The objective and its gradient at flat parameters theta = (W row by row, b)."""

    values: np.ndarray  # (n, d) float32, C order
    targets: np.ndarray  # (n,) class positions
    n_classes: int
    l2: float  # 1 / (C n)
    # values is lower triangular (n = d, a Cholesky factor): its products by trmm, half the work.
    lower_triangular: bool = False

    def __post_init__(self) -> None:
        self.values = np.ascontiguousarray(self.values, dtype=np.float32)
        self.rows = np.arange(self.values.shape[0])
        self.frequencies = np.bincount(self.targets, minlength=self.n_classes) / len(self.rows)
        self.dtype = np.float32
        self._trmm = get_blas_funcs("trmm", (self.values,)) if self.lower_triangular else None
        # The last evaluation's point and its scores (close_enough works from them).
        self._evaluated_at: np.ndarray | None = None
        self._last_scores: np.ndarray | None = None

    @property
    def noise(self) -> float:
        """The products' error in the loss, relative to it."""
        return FLOAT32_NOISE if self.dtype == np.float32 else 0.0

    def refine(self) -> bool:
        """Float64 products from now on; False if they already are."""
        if self.dtype == np.float64:
            return False
        self.values, self.dtype = self.values.astype(np.float64), np.float64
        if self.lower_triangular:
            self._trmm = get_blas_funcs("trmm", (self.values,))
        return True

    def close_enough(
        self, relative_tol: float
    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray | None]:
        """A stop for weights within relative_tol of the optimum's: at theta's weights W, the
        intercepts are set to their best b*(W) by Newton steps (the scores' product is not
        redone), and the fit ends there if |gradient_W| <= relative_tol x l2 x |W| (2-norms).
        The objective minimised over the intercepts is l2-strongly convex in W, so then
        |W - W*| <= relative_tol x |W|. Returns the polished theta, or None to go on. A failed
        check waits twice as many iterations as the last before the next."""
        n_weights = self.n_classes * self.values.shape[1]
        skip, next_skip = 0, 1

        def close_enough(theta: np.ndarray, gradient: np.ndarray) -> np.ndarray | None:
            nonlocal skip, next_skip
            limit = relative_tol * self.l2 * np.linalg.norm(theta[:n_weights])
            if skip > 0 or np.linalg.norm(gradient[:n_weights]) > limit:
                skip -= 1
                return None
            if theta is not self._evaluated_at:
                self(theta)
            best = self._best_intercepts()
            if best is None:  # no Newton convergence: no bound, go on
                return None
            shift, residual = best
            gradient_w = self._weights_gradient(residual).ravel() + self.l2 * theta[:n_weights]
            if np.linalg.norm(gradient_w) > limit:
                skip, next_skip = next_skip, 2 * next_skip
                return None
            polished = theta.copy()
            polished[n_weights:] += shift
            return polished

        return close_enough

    def _best_intercepts(self, steps: int = 8) -> tuple[np.ndarray, np.ndarray] | None:
        """(shift of the intercepts to their optimum for the last evaluated weights, the
        gradient of the mean cross-entropy by the scores there: (softmax - one-hot) / n), or
        None where Newton's method does not settle in `steps` (a near-singular Hessian)."""
        n = self.values.shape[0]
        shift = np.zeros(self.n_classes)
        for _ in range(steps):
            probabilities = softmax(self._last_scores + shift, axis=1)
            mean = probabilities.mean(axis=0)
            # Equal shifts of every intercept change nothing: the all-ones term makes the
            # Hessian invertible without moving the step (the gradient sums to zero).
            hessian = np.diag(mean) - probabilities.T @ probabilities / n + 1.0 / self.n_classes
            try:
                step = np.linalg.solve(hessian, mean - self.frequencies)
            except np.linalg.LinAlgError:
                return None
            shift -= step
            if np.abs(step).max() <= 1e-9:
                probabilities = softmax(self._last_scores + shift, axis=1)
                probabilities[self.rows, self.targets] -= 1.0
                return shift, (probabilities / n).astype(self.dtype)
        return None

    def _scores_of(self, weights: np.ndarray) -> np.ndarray:
        """values @ weights.T, (n, classes)."""
        weights = weights.astype(self.dtype)
        if self._trmm is None:
            return self.values @ weights.T
        # values.T is the Fortran-ordered upper factor: trans_a gives values itself.
        return self._trmm(1.0, self.values.T, weights.T, side=0, lower=0, trans_a=1)

    def _weights_gradient(self, residual: np.ndarray) -> np.ndarray:
        """residual.T @ values, (classes, d)."""
        if self._trmm is None:
            return residual.T @ self.values
        return self._trmm(1.0, self.values.T, residual.T, side=1, lower=0, trans_a=1)

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        n, d = self.values.shape
        scores = self._scores_of(theta[: self.n_classes * d].reshape(self.n_classes, d))
        scores += theta[self.n_classes * d :].astype(self.dtype)
        scores -= scores.max(axis=1, keepdims=True)
        probabilities = np.exp(scores)
        totals = probabilities.sum(axis=1, keepdims=True, dtype=np.float64)
        loss = (np.log(totals).sum() - scores[self.rows, self.targets].sum(dtype=np.float64)) / n
        # The gradient of the mean cross-entropy by the scores: (softmax - one-hot) / n.
        probabilities *= (1.0 / (n * totals)).astype(self.dtype)
        probabilities[self.rows, self.targets] -= 1.0 / n
        gradient = np.empty_like(theta)
        gradient[: self.n_classes * d] = self._weights_gradient(probabilities).ravel()
        flat_weights = theta[: self.n_classes * d]
        gradient[: self.n_classes * d] += self.l2 * flat_weights
        gradient[self.n_classes * d :] = probabilities.sum(axis=0, dtype=np.float64)
        self._last_scores, self._evaluated_at = scores, theta
        return float(loss + 0.5 * self.l2 * (flat_weights @ flat_weights)), gradient


@dataclass
class LbfgsResult:
    """Where a fit ended; `converged`: at the tolerance, at float64's own floor (scipy's ftol)
    or provably close to the optimum (close_enough); `stop`: why it ended otherwise."""

    theta: np.ndarray
    n_iter: int
    converged: bool
    stop: str = ""


def lbfgs(
    objective,
    theta: np.ndarray,
    tol: float,
    max_iter: int,
    memory: int = 10,
    close_enough: Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None = None,
) -> LbfgsResult:
    """Minimise `objective` (theta -> (value, gradient); where it has them, `noise` and
    `refine()` as MultinomialLoss's) from theta: L-BFGS directions (two-loop recursion over the
    last `memory` steps), a backtracking line search from the unit step. Stops at
    max |gradient| <= tol, or at the point `close_enough(theta, gradient)` returns."""
    value, gradient = objective(theta)
    if not (np.isfinite(value) and np.isfinite(gradient).all()):
        raise ValueError("the loss is not finite at the start: the values hold NaN or infinity")
    lowest = value
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []
    for n_iter in range(max_iter):
        if np.abs(gradient).max() <= tol:
            return LbfgsResult(theta, n_iter, True)
        if close_enough is not None and (final := close_enough(theta, gradient)) is not None:
            return LbfgsResult(final, n_iter, True)
        direction = _direction(gradient, steps)
        slope = float(gradient @ direction)
        if slope >= 0:  # the memory no longer gives a descent direction: forget it
            steps.clear()
            direction = _direction(gradient, steps)
            slope = float(gradient @ direction)
        accepted = _line_search(objective, theta, value, lowest, direction, slope)
        if accepted is None:  # lost in the products' noise: go on in float64, or stop there
            if not getattr(objective, "refine", lambda: False)():
                # No step lowers the loss even in float64 before the gradient is small: not
                # convergence (scipy's ABNORMAL_TERMINATION_IN_LNSRCH, which scikit-learn warns of).
                return LbfgsResult(theta, n_iter, False, "the line search found no lower loss")
            value, gradient = objective(theta)
            lowest = value
            continue
        new_theta, new_value, new_gradient = accepted
        step, change = new_theta - theta, new_gradient - gradient
        curvature = float(step @ change)
        if curvature > 1e-10 * float(change @ change):
            steps.append((step, change, 1.0 / curvature))
            del steps[:-memory]
        decrease = value - new_value
        theta, value, gradient = new_theta, new_value, new_gradient
        lowest = min(lowest, value)
        if getattr(objective, "noise", 0.0) == 0.0 and 0 <= decrease <= FTOL * max(abs(value), 1):
            return LbfgsResult(theta, n_iter + 1, True)  # float64's own floor, as scipy's ftol
    converged = bool(np.abs(gradient).max() <= tol)
    return LbfgsResult(theta, max_iter, converged, "" if converged else "max_iter")


def _direction(gradient: np.ndarray, steps: list) -> np.ndarray:
    """-H gradient for the L-BFGS inverse Hessian H of `steps` (Nocedal and Wright, Alg. 7.4);
    without steps, -gradient scaled to unit length."""
    if not steps:
        return -gradient / max(float(np.linalg.norm(gradient)), 1.0)
    direction = -gradient
    alphas = []
    for step, change, rho in reversed(steps):
        alpha = rho * float(step @ direction)
        direction -= alpha * change
        alphas.append(alpha)
    step, change, _ = steps[-1]
    direction *= float(step @ change) / float(change @ change)
    for (step, change, rho), alpha in zip(steps, reversed(alphas), strict=True):
        direction += (alpha - rho * float(change @ direction)) * step
    return direction


def _line_search(objective, theta, value, lowest, direction, slope):
    """The first of the unit step and its halvings that lowers the loss enough (Armijo), or
    keeps it within the loss's noise of the `lowest` value so far while the slope along the
    direction falls (approximate Wolfe); None if none of them does."""
    ceiling = lowest + getattr(objective, "noise", 0.0) * max(abs(lowest), 1.0)
    step = 1.0
    for _ in range(HALVINGS):
        new_theta = theta + step * direction
        new_value, new_gradient = objective(new_theta)
        if new_value <= value + ARMIJO * step * slope or (
            new_value <= ceiling and abs(float(new_gradient @ direction)) <= SLOPE_DROP * abs(slope)
        ):
            return new_theta, new_value, new_gradient
        step *= 0.5
    return None


class MultinomialLogisticRegression(ClassifierMixin, BaseEstimator):
    """scikit-learn's LogisticRegression (lbfgs, L2, intercept) in float32 products: the same
    parameters, attributes (`coef_`, `intercept_`, `classes_`, `n_iter_`) and solution. Its
    own: `relative_tol` (the stop of the module docstring; 0, the default, converges to `tol`)
    and `lower_triangular` (X is lower triangular: products by trmm)."""

    def __init__(
        self,
        C=1.0,
        tol=1e-6,
        max_iter=3000,
        warm_start=False,
        memory=10,
        relative_tol=0.0,
        lower_triangular=False,
    ):
        self.C = C
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.memory = memory
        self.relative_tol = relative_tol
        self.lower_triangular = lower_triangular

    def fit(self, X, y) -> MultinomialLogisticRegression:
        values = np.asarray(X, dtype=np.float32)
        classes, targets = np.unique(np.asarray(y), return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"a logistic regression needs 2 classes or more, got {classes}")
        n_classes, binary = classes.size, classes.size == 2
        # Two softmax rows (-v/2, v/2) with |W|^2 / (2 C' n) are the binomial model v with
        # |v|^2 / (4 C' n): C' = C / 2 gives scikit-learn's binomial penalty |v|^2 / (2 C n).
        c = float(self.C) / 2.0 if binary else float(self.C)
        loss = MultinomialLoss(
            values, targets, n_classes, 1.0 / (c * values.shape[0]), self.lower_triangular
        )
        close_enough = loss.close_enough(self.relative_tol) if self.relative_tol else None
        result = lbfgs(loss, self._start(values.shape[1], classes), self.tol, self.max_iter,
                       self.memory, close_enough)  # fmt: skip
        if not result.converged:
            where = f"max_iter={self.max_iter}" if result.stop == "max_iter" else result.stop
            warnings.warn(
                f"lbfgs stopped ({where}) before |gradient| <= {self.tol}",
                ConvergenceWarning,
                stacklevel=2,
            )
        d = values.shape[1]
        coef = result.theta[: n_classes * d].reshape(n_classes, d)
        intercept = result.theta[n_classes * d :]
        if binary:
            coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
        self.classes_, self.coef_, self.intercept_ = classes, coef, intercept
        self.n_iter_ = np.array([result.n_iter])
        self.converged_ = result.converged
        return self

    def decision_function(self, X) -> np.ndarray:
        """(images, classes) scores; with two classes, (images,) scores of class 1."""
        scores = np.asarray(X, np.float64) @ self.coef_.T + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        positions = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[positions]

    def predict_proba(self, X) -> np.ndarray:
        """(images, classes) softmax probabilities, in the order of `classes_`."""
        scores = self.decision_function(X)
        if scores.ndim == 1:  # binary: class 1 against class 0, as scikit-learn's
            scores = np.column_stack([-scores / 2, scores / 2])
        return softmax(scores, axis=1)

    def _start(self, n_features: int, classes: np.ndarray) -> np.ndarray:
        """Zeros, or with warm_start the current coefficients where their shape fits."""
        n_classes = classes.size
        theta = np.zeros(n_classes * (n_features + 1))
        coef = getattr(self, "coef_", None) if self.warm_start else None
        rows = 1 if n_classes == 2 else n_classes
        if coef is None or coef.shape != (rows, n_features):
            return theta
        coef, intercept = np.asarray(coef, np.float64), np.asarray(self.intercept_, np.float64)
        if n_classes == 2:
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.r_[-intercept, intercept] / 2
        theta[: n_classes * n_features] = coef.ravel()
        theta[n_classes * n_features :] = intercept
        return theta
