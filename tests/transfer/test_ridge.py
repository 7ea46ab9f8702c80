"""Closed-form ridge on one-hot targets against scikit-learn's Ridge, and the search for C."""

from __future__ import annotations

import numpy as np
import pytest
from builders.transfer_probes import probe_data
from sklearn.linear_model import Ridge

from cnn_feature_behavior.transfer.classifier import fit_probe, search_c
from cnn_feature_behavior.transfer.ridge import DUAL_SHARE, RidgeData, RidgeSystem
from cnn_feature_behavior.transfer.settings import TransferSettings
from cnn_feature_behavior.transfer.splits import stratified_folds


def one_hot(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return (labels[:, None] == classes[None, :]).astype(np.float64)


@pytest.mark.parametrize(("n_images", "n_features"), [(60, 25), (30, 80)])  # primal, dual
def test_ridge_weights_are_scikit_learns(n_images, n_features):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, n_images)
    values = (rng.standard_normal((n_images, n_features)) + 3.0).astype(np.float32)
    classes = np.arange(4)
    columns = np.array([1, 4, 5, 9, 20])
    for subset in (None, columns):
        system = RidgeSystem(RidgeData.of(values, labels, classes), subset)
        assert system.primal == ((n_features if subset is None else 5) <= DUAL_SHARE * n_images)
        design = values if subset is None else values[:, subset]
        for c in (0.01, 1.0):
            weights, intercept = system.weights(c)
            reference = Ridge(alpha=1.0 / c, solver="cholesky").fit(
                design.astype(np.float64), one_hot(labels, classes)
            )
            np.testing.assert_allclose(weights, reference.coef_.T, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(intercept, reference.intercept_, rtol=1e-4, atol=1e-5)


def test_search_widens_the_grid_where_the_best_c_lies_past_it():
    seen = []

    def score(c: float) -> tuple[float, float]:
        seen.append(c)
        return -abs(np.log10(c) - 3.0), 0.0  # best at C = 1000

    chosen, keys, at_edge = search_c(score, (1e-2, 1e-1, 1.0, 10.0), widen=3)
    assert chosen == pytest.approx(1000.0) and not at_edge
    assert 1e4 in [pytest.approx(c) for c in keys]  # looked one step past to be sure
    chosen, _, at_edge = search_c(score, (1e-2, 1e-1, 1.0, 10.0), widen=1)
    assert chosen == pytest.approx(100.0) and at_edge
    chosen, _, at_edge = search_c(lambda c: (-abs(np.log10(c) + 4), 0.0), (1e-2, 1.0), 5)
    assert chosen == pytest.approx(1e-4) and not at_edge


def test_ridge_probe_two_classes_and_chosen_c_by_the_folds():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 40)
    values = rng.standard_normal((80, 30)).astype(np.float32)
    values[:, 0] += labels * 2.0
    data = probe_data(values, labels, values, stratified_folds(labels, 5, 0))
    result = fit_probe(data, "ridge", TransferSettings(classifier="ridge"))
    assert result.solver == "ridge" and set(result.predictions) == {0, 1}
    assert np.mean(result.predictions == labels) > 0.8
    assert result.regularisation_c in result.cv_losses


def test_tiny_penalty_on_a_rank_deficient_kernel_still_solves():
    # The centred kernel of n images has rank n - 1; at 1 / C = 1e-9 rounding can make the
    # system indefinite for a Cholesky factorisation: the eigendecomposition takes over.
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 10)
    values = (rng.standard_normal((30, 400)) * 100).astype(np.float32)
    system = RidgeSystem(RidgeData.of(values, labels, np.arange(3)), None)
    assert not system.primal
    weights, intercept = system.weights(1e9)
    assert np.isfinite(weights).all() and np.isfinite(intercept).all()
    predicted = np.argmax(values @ weights + intercept, axis=1)
    assert np.mean(predicted == labels) == 1.0  # nearly interpolates the training images
    eigen = system._eigen_solve(1.0)
    np.testing.assert_allclose(
        system.design.T.astype(np.float64) @ eigen, system.weights(1.0)[0], rtol=1e-6, atol=1e-9
    )


def test_search_from_a_hint_finds_the_same_best_with_fewer_scores():
    grid = tuple(10.0**k for k in range(-5, 3))
    counted = {"middle": [], "hint": []}

    def scorer(name):
        def score(c: float) -> tuple[float, float]:
            counted[name].append(c)
            return -abs(np.log10(c) - 1.0), 0.0  # best at C = 10

        return score

    assert search_c(scorer("middle"), grid, 3)[0] == pytest.approx(10.0)
    assert search_c(scorer("hint"), grid, 3, start=9.0)[0] == pytest.approx(10.0)
    assert len(counted["hint"]) == 3 < len(counted["middle"])


def test_exhaustive_search_is_not_stopped_by_a_plateau():
    # Flat held-out scores around the start, the best far off: a local walk stops on the plateau.
    grid = tuple(10.0**k for k in range(-5, 2))

    def score(c: float) -> tuple[float, float]:
        return (0.9 if c == 1e-5 else 0.5), 0.0

    assert search_c(score, grid, 0)[0] != pytest.approx(1e-5)
    chosen, _, at_edge = search_c(score, grid, 0, exhaustive=True)
    assert chosen == pytest.approx(1e-5) and at_edge


def test_centred_products_are_the_float64_products_over_row_blocks(monkeypatch):
    from cnn_feature_behavior.transfer import ridge

    monkeypatch.setattr(ridge, "GRAM_ROW_BLOCK", 7)  # several row blocks, several column bands
    rng = np.random.default_rng(5)
    values = (rng.standard_normal((40, 23)) * 5 + 2).astype(np.float32)
    targets = rng.standard_normal((40, 3))
    mean = values.mean(axis=0, dtype=np.float64)
    gram, cross = ridge.centred_products(values, mean, targets, threads=1)
    centred = values.astype(np.float64) - mean
    np.testing.assert_allclose(gram, centred.T @ centred, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(cross, centred.T @ targets, rtol=1e-12, atol=1e-10)
    assert gram.flags.f_contiguous and np.array_equal(gram, gram.T)


def test_a_wide_rank_deficient_primal_system_solves_by_cholesky_at_a_small_penalty():
    # 300 images, 400 features (primal: within DUAL_SHARE): the Gram matrix has rank 299. With
    # float32 sums, rounding can leave it indefinite at a small 1 / C, sending it to an
    # eigendecomposition (at caltech256's size, minutes per system).
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(5), 60)
    values = (rng.standard_normal((300, 400)) * 3 + 1).astype(np.float32)
    system = RidgeSystem(RidgeData.of(values, labels, np.arange(5)), None)
    assert system.primal
    weights, intercept = system.weights(1e3)
    assert system._eigen is None  # the factorisation did not fail
    reference = Ridge(alpha=1e-3, solver="svd").fit(
        values.astype(np.float64), one_hot(labels, np.arange(5))
    )
    np.testing.assert_allclose(weights, reference.coef_.T, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(intercept, reference.intercept_, rtol=1e-5, atol=1e-7)


def test_closed_form_c_is_the_lowest_mean_held_out_loss_of_scikit_learns_ridge_per_fold():
    # Brute force: scikit-learn's Ridge on each fold at every C of the widened grid, the mean
    # squared error to the one-hot targets on its held-out images, averaged over the folds.
    rng = np.random.default_rng(6)
    labels = np.repeat(np.arange(4), 50)
    values = rng.standard_normal((200, 60)).astype(np.float32)
    values[:, :4] += np.eye(4, dtype=np.float32)[labels] * 1.5
    folds = stratified_folds(labels, 5, 1)
    settings = TransferSettings(classifier="ridge")
    fitted = fit_probe(probe_data(values, labels, values, folds), "ridge", settings)
    grid = sorted(fitted.cv_losses)
    assert len(grid) == len(settings.ridge.c_grid) + 2 * settings.c_selection.widen
    expected = {}
    for c in grid:
        losses = []
        for fit, held in folds:
            model = Ridge(alpha=1.0 / c).fit(
                values[fit].astype(np.float64), one_hot(labels[fit], np.arange(4))
            )
            error = model.predict(values[held].astype(np.float64)) - one_hot(
                labels[held], np.arange(4)
            )
            losses.append(np.mean(np.sum(error**2, axis=1)))
        expected[c] = np.mean(losses)
    np.testing.assert_allclose(
        [fitted.cv_losses[c] for c in grid], [expected[c] for c in grid], rtol=1e-6
    )
    assert fitted.regularisation_c == min(grid, key=expected.__getitem__)
    assert fitted.cv_loss == pytest.approx(expected[fitted.regularisation_c], rel=1e-6)
    reference = Ridge(alpha=1.0 / fitted.regularisation_c).fit(
        values.astype(np.float64), one_hot(labels, np.arange(4))
    )
    np.testing.assert_allclose(fitted.weights, reference.coef_.T, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fitted.intercepts, reference.intercept_, rtol=1e-4, atol=1e-6)


def test_search_walks_towards_the_better_of_both_neighbours():
    # flowers102-sized conv4_2: from C = 0.1 the held-out accuracy tied upwards while the loss
    # fell, so a walk that tried the larger C first climbed to C = 100 (0.731 on the test
    # images) and never saw C = 0.01, the best held-out accuracy (0.750).
    keys = {1e-4: (0.60, -5.0), 1e-3: (0.696, -3.83), 1e-2: (0.711, -2.05), 1e-1: (0.689, -1.40),
            1.0: (0.689, -1.14), 10.0: (0.689, -1.04), 100.0: (0.691, -1.03)}  # fmt: skip
    chosen, scored, at_edge = search_c(keys.__getitem__, tuple(keys), widen=0)
    assert chosen == pytest.approx(1e-2) and not at_edge
    assert sorted(scored) == [1e-3, 1e-2, 1e-1, 1.0]
