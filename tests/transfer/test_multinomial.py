"""The float32 multinomial logistic regression against a brute-force loss and against
scikit-learn's converged float64 LogisticRegression (the same objective)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from cnn_feature_behavior.transfer.multinomial import (
    MultinomialLogisticRegression,
    MultinomialLoss,
    lbfgs,
)


def blobs(n_classes: int, n: int = 240, d: int = 12, spread: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = rng.standard_normal((n_classes, d)) * spread
    values = (centres[labels] + rng.standard_normal((n, d))).astype(np.float32)
    return values, labels


def brute_force_loss(theta, values, labels, n_classes, c):
    """Mean cross-entropy + |W|^2 / (2 C n), image by image in float64, and its gradient."""
    n, d = values.shape
    weights = theta[: n_classes * d].reshape(n_classes, d)
    intercepts = theta[n_classes * d :]
    loss, grad_w, grad_b = 0.0, np.zeros_like(weights), np.zeros(n_classes)
    for x, y in zip(values.astype(np.float64), labels, strict=True):
        scores = weights @ x + intercepts
        loss += logsumexp(scores) - scores[y]
        residual = np.exp(scores - logsumexp(scores))
        residual[y] -= 1.0
        grad_w += np.outer(residual, x)
        grad_b += residual
    l2 = 1.0 / (c * n)
    loss = loss / n + 0.5 * l2 * np.sum(weights**2)
    return loss, np.concatenate([(grad_w / n + l2 * weights).ravel(), grad_b / n])


def test_loss_and_gradient_are_the_brute_force_ones():
    values, labels = blobs(4, n=50, d=7)
    theta = np.random.default_rng(1).standard_normal(4 * 8) * 0.5
    value, gradient = MultinomialLoss(values, labels, 4, 1.0 / (0.3 * 50))(theta)
    expected_value, expected_gradient = brute_force_loss(theta, values, labels, 4, 0.3)
    assert value == pytest.approx(expected_value, rel=1e-6)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("c", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("n_classes", [3, 7])
def test_solution_is_scikit_learns_converged_float64_one(n_classes, c):
    values, labels = blobs(n_classes)
    reference = LogisticRegression(C=c, tol=1e-10, max_iter=20000)
    reference.fit(values.astype(np.float64), labels)
    model = MultinomialLogisticRegression(C=c, tol=1e-7).fit(values, labels)
    scale = np.abs(reference.coef_).max()
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=2e-3 * scale)
    # Intercepts are unique up to a constant shared by the classes (the softmax ignores it).
    np.testing.assert_allclose(
        model.intercept_ - model.intercept_.mean(),
        reference.intercept_ - reference.intercept_.mean(),
        atol=2e-3 * scale,
    )
    np.testing.assert_array_equal(model.predict(values), reference.predict(values))
    assert model.n_iter_.shape == (1,) and 0 < model.n_iter_[0] < model.max_iter


def test_two_classes_are_scikit_learns_binomial_model():
    values, labels = blobs(2)
    names = np.array(["cat", "dog"])[labels]
    reference = LogisticRegression(C=0.5, tol=1e-10, max_iter=20000)
    reference.fit(values.astype(np.float64), names)
    model = MultinomialLogisticRegression(C=0.5, tol=1e-8).fit(values, names)
    assert model.coef_.shape == (1, values.shape[1]) and model.intercept_.shape == (1,)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-4)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, atol=1e-4)
    assert list(model.classes_) == ["cat", "dog"]
    np.testing.assert_array_equal(model.predict(values), reference.predict(values))


@pytest.mark.parametrize("n_classes", [2, 5])
def test_warm_start_continues_from_the_current_solution(n_classes):
    values, labels = blobs(n_classes)
    model = MultinomialLogisticRegression(C=1.0, tol=1e-6, warm_start=True).fit(values, labels)
    cold_iterations = model.n_iter_[0]
    coef = model.coef_.copy()
    model.fit(values, labels)  # from its own solution
    assert model.n_iter_[0] <= 2
    np.testing.assert_allclose(model.coef_, coef, atol=1e-4)
    model.set_params(C=2.0).fit(values, labels)  # a nearby C
    assert model.n_iter_[0] < cold_iterations
    cold = MultinomialLogisticRegression(C=2.0, tol=1e-6).fit(values, labels)
    np.testing.assert_allclose(model.coef_, cold.coef_, atol=1e-3 * np.abs(cold.coef_).max())


def test_max_iter_warns_and_reports_its_iterations():
    values, labels = blobs(5)
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        model = MultinomialLogisticRegression(C=100.0, tol=1e-10, max_iter=3).fit(values, labels)
    assert model.n_iter_[0] == 3


def test_a_tolerance_below_float32_noise_ends_at_the_noise_floor():
    # |gradient| <= 1e-14 cannot be reached from float32 products: the line search finds no
    # step that lowers the loss beyond its noise, and the fit ends there, near the optimum.
    values, labels = blobs(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = MultinomialLogisticRegression(C=1.0, tol=1e-14, max_iter=100000)
        model.fit(values, labels)
    assert model.n_iter_[0] < 2000
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=20000).fit(values, labels)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-3)


def test_lbfgs_minimises_an_ill_conditioned_quadratic():
    scales = np.logspace(0, 3, 50)

    def quadratic(theta):
        return 0.5 * float(scales @ (theta - 1.0) ** 2), scales * (theta - 1.0)

    result = lbfgs(quadratic, np.zeros(50), tol=1e-6, max_iter=500)
    assert result.converged and result.n_iter < 500
    np.testing.assert_allclose(result.theta, 1.0, atol=1e-6)


def test_one_class_is_an_error():
    with pytest.raises(ValueError, match="2 classes or more"):
        MultinomialLogisticRegression().fit(np.zeros((3, 2), np.float32), [1, 1, 1])


@pytest.mark.parametrize("n_classes", [2, 4])
def test_probabilities_are_scikit_learns(n_classes):
    values, labels = blobs(n_classes)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=20000)
    reference.fit(values.astype(np.float64), labels)
    model = MultinomialLogisticRegression(C=1.0, tol=1e-7).fit(values, labels)
    np.testing.assert_allclose(
        model.predict_proba(values), reference.predict_proba(values), atol=1e-4
    )


def test_non_finite_values_are_an_error():
    values, labels = blobs(3)
    values[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        MultinomialLogisticRegression().fit(values, labels)


def test_lower_triangular_products_are_the_dense_ones():
    # A Cholesky factor as the design (the row space): trmm must give the dense products.
    rng = np.random.default_rng(3)
    values = np.tril(rng.standard_normal((40, 40))).astype(np.float32)
    labels = rng.integers(0, 5, 40)
    theta = rng.standard_normal(5 * 41) * 0.3
    dense = MultinomialLoss(values, labels, 5, 0.02)
    triangular = MultinomialLoss(values, labels, 5, 0.02, lower_triangular=True)
    for refined in (False, True):  # float32 products, then float64 ones
        if refined:
            assert triangular.refine() and dense.refine()
        (value, gradient), (expected, expected_gradient) = triangular(theta), dense(theta)
        assert value == pytest.approx(expected, rel=1e-6)
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-7)
    fitted = MultinomialLogisticRegression(C=1.0, lower_triangular=True).fit(values, labels)
    reference = MultinomialLogisticRegression(C=1.0).fit(values, labels)
    np.testing.assert_allclose(fitted.coef_, reference.coef_, atol=1e-4)


@pytest.mark.parametrize("n_classes, c", [(2, 1.0), (6, 0.01), (6, 10.0)])
def test_relative_tol_stops_with_weights_that_close_to_the_optimum(n_classes, c):
    values, labels = blobs(n_classes, n=300, d=40, spread=0.6)
    reference = LogisticRegression(C=c, tol=1e-10, max_iter=20000)
    reference.fit(values.astype(np.float64), labels)
    model = MultinomialLogisticRegression(C=c, tol=1e-10, relative_tol=0.01).fit(values, labels)
    converged = MultinomialLogisticRegression(C=c, tol=1e-10).fit(values, labels)
    assert model.n_iter_[0] < converged.n_iter_[0]
    error = np.linalg.norm(model.coef_ - reference.coef_)
    assert error <= 0.01 * np.linalg.norm(reference.coef_) * 1.01
    # The intercepts are the best ones for the weights found: close to the optimum's too.
    scale = np.abs(reference.intercept_).max() + 1.0
    np.testing.assert_allclose(
        model.intercept_ - model.intercept_.mean(),
        reference.intercept_ - reference.intercept_.mean(),
        atol=0.02 * scale,
    )


def test_relative_tol_on_separable_classes_at_a_huge_c_stays_finite():
    # Near-certain probabilities make the intercepts' Hessian near-singular: the stop must then
    # go on (or stop at a finite point), never return a non-finite one.
    values, labels = blobs(4, n=80, d=30, spread=6.0)
    model = MultinomialLogisticRegression(C=1e5, relative_tol=0.01).fit(values, labels)
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()
    np.testing.assert_array_equal(model.predict(values), labels)


def test_a_float64_line_search_failure_is_not_convergence():
    # An objective whose gradient does not point downhill: no step of the line search lowers
    # it, in float64 too. scipy's L-BFGS-B ends such a fit with ABNORMAL_TERMINATION_IN_LNSRCH
    # (scikit-learn warns); it used to be reported as converged.
    def wrong_gradient(theta):
        return float(theta @ theta), -2.0 * theta

    result = lbfgs(wrong_gradient, np.ones(5), tol=1e-6, max_iter=100)
    assert not result.converged


def test_a_line_search_failure_warns_and_the_model_says_so(monkeypatch):
    from cnn_feature_behavior.transfer import multinomial

    values, labels = blobs(3)
    monkeypatch.setattr(multinomial, "_line_search", lambda *args: None)  # float32, then float64
    with pytest.warns(ConvergenceWarning, match="line search"):
        model = MultinomialLogisticRegression(C=1.0).fit(values, labels)
    assert not model.converged_
    monkeypatch.undo()
    converged = MultinomialLogisticRegression(C=1.0).fit(values, labels)
    assert converged.converged_
