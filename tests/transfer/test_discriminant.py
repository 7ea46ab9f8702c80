"""LDA from shared Gram matrices against scikit-learn's LinearDiscriminantAnalysis, a fold by
subtraction against a fit on the fold's rows, a column subset against a fit on the subset."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import log_loss

from cnn_feature_behavior.transfer import ridge
from cnn_feature_behavior.transfer.discriminant import DiscriminantData, small_integers


def dataset(n_images: int, n_features: int, n_classes: int, seed: int = 0):
    """Skewed, correlated, non-negative values (as spatial means of ReLU maps), unequal classes."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(n_classes, n_images, p=np.arange(1, n_classes + 1) / np.sum(
        np.arange(1, n_classes + 1)))  # fmt: skip
    labels[:n_classes] = np.arange(n_classes)  # every class present
    centres = rng.standard_normal((n_classes, 6))
    latent = centres[labels] + rng.standard_normal((n_images, 6))
    mixing = rng.standard_normal((6, n_features))
    values = np.maximum(latent @ mixing + rng.standard_normal((n_images, n_features)), 0) + 2.0
    return values.astype(np.float32), labels


def decision(model, values: np.ndarray) -> np.ndarray:
    """The model's scores in float64 (its own scores multiply in float32, as ridge's)."""
    return values.astype(np.float64) @ model.weights + model.intercepts


def scikit_learns(values, labels, shrinkage):
    model = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage)
    return model.fit(values.astype(np.float64), labels)


@pytest.mark.parametrize("shrinkage", [1e-3, 0.1, 0.7, 1.0])
@pytest.mark.parametrize("n_classes", [2, 5])
def test_discriminant_is_scikit_learns_lda(shrinkage, n_classes):
    values, labels = dataset(90, 12, n_classes)
    model = DiscriminantData.of(values, labels, np.arange(n_classes)).system().fit(shrinkage)
    reference = scikit_learns(values, labels, shrinkage)
    tested, _ = dataset(40, 12, n_classes, seed=1)
    scores = decision(model, tested)
    expected = reference.decision_function(tested.astype(np.float64))
    if n_classes == 2:  # scikit-learn's one decision value: class 1's score minus class 0's
        np.testing.assert_allclose(scores[:, 1] - scores[:, 0], expected, rtol=1e-9, atol=1e-9)
        coef = model.weights[:, 1] - model.weights[:, 0]
        np.testing.assert_allclose(coef, reference.coef_[0], rtol=1e-9, atol=1e-9)
    else:
        np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(model.weights, reference.coef_.T, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(model.intercepts, reference.intercept_, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(model.predict(tested), reference.predict(tested))
    np.testing.assert_allclose(
        softmax(scores, axis=1), reference.predict_proba(tested), rtol=1e-9, atol=1e-12
    )
    tested_labels = reference.predict(tested)  # any labels among the classes
    # log_loss multiplies in float32 (as the evaluation scores held-out images).
    assert model.log_loss(tested, tested_labels) == pytest.approx(
        log_loss(tested_labels, reference.predict_proba(tested), labels=np.arange(n_classes)),
        rel=1e-5,
    )


def test_class_labels_need_not_be_positions():
    values, labels = dataset(60, 8, 3)
    named = np.array([5, 7, 11])[labels]
    model = DiscriminantData.of(values, named, np.array([5, 7, 11])).system().fit(0.2)
    reference = scikit_learns(values, named, 0.2)
    np.testing.assert_array_equal(model.predict(values), reference.predict(values))
    with pytest.raises(ValueError, match="not among the classes"):
        DiscriminantData.of(values, labels, np.array([5, 7, 11]))


def test_a_column_subset_is_a_fit_on_the_subset():
    values, labels = dataset(120, 30, 4)
    columns = np.array([0, 3, 4, 17, 29])
    data = DiscriminantData.of(values, labels, np.arange(4))
    model = data.system(columns).fit(0.05)
    reference = scikit_learns(values[:, columns], labels, 0.05)
    np.testing.assert_allclose(
        decision(model, values[:, columns]), reference.decision_function(values[:, columns]),
        rtol=1e-9, atol=1e-9,
    )  # fmt: skip


def test_a_fold_by_subtraction_is_the_fit_on_the_folds_rows(monkeypatch):
    monkeypatch.setattr(ridge, "GRAM_ROW_BLOCK", 16)  # several row blocks
    values, labels = dataset(150, 20, 5)
    held_out = np.arange(0, 150, 4)
    kept = np.setdiff1d(np.arange(150), held_out)
    data = DiscriminantData.of(values, labels, np.arange(5))
    fold = data.without(held_out)
    direct = DiscriminantData.of(values[kept], labels[kept], np.arange(5), centre=data.centre)
    np.testing.assert_allclose(fold.scatter, direct.scatter, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(fold.class_sums, direct.class_sums, rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(fold.counts, direct.counts)
    columns = np.array([1, 2, 8, 19])
    model = fold.system(columns).fit(0.3)
    reference = scikit_learns(values[kept][:, columns], labels[kept], 0.3)
    held = values[held_out][:, columns]
    np.testing.assert_allclose(
        decision(model, held), reference.decision_function(held), rtol=1e-8, atol=1e-8
    )
    assert model.log_loss(held, labels[held_out]) == pytest.approx(
        log_loss(labels[held_out], reference.predict_proba(held), labels=np.arange(5)), rel=1e-5
    )


def test_scale_is_a_fit_on_rescaled_and_shifted_values():
    # A fold's own standardisation: its values are the data's times a per-column factor plus a
    # shift; the fit with `scale` scores the data's values as the fit on those scores them.
    values, labels = dataset(100, 10, 3)
    rng = np.random.default_rng(2)
    factor = rng.uniform(0.3, 3.0, 10)
    shift = rng.standard_normal(10)
    model = DiscriminantData.of(values, labels, np.arange(3)).system(scale=factor).fit(0.2)
    rescaled = values.astype(np.float64) * factor
    np.testing.assert_allclose(
        decision(model, values),
        scikit_learns(rescaled, labels, 0.2).decision_function(rescaled),
        rtol=1e-9,
        atol=1e-9,
    )
    # A shift moves every class's score of an image by the same amount: the same posteriors.
    shifted = values.astype(np.float64) * factor + shift
    reference = scikit_learns(shifted, labels, 0.2)
    np.testing.assert_allclose(
        softmax(decision(model, values), axis=1), reference.predict_proba(shifted), atol=1e-9
    )
    np.testing.assert_array_equal(model.predict(values), reference.predict(shifted))


def test_a_fold_without_every_image_of_a_class_is_an_error():
    values, labels = dataset(40, 5, 3)
    with pytest.raises(ValueError, match="every class"):
        DiscriminantData.of(values, labels, np.arange(3)).without(np.flatnonzero(labels == 2))


def test_shrinkage_outside_its_range_and_constant_columns_are_errors():
    values, labels = dataset(40, 5, 3)
    system = DiscriminantData.of(values, labels, np.arange(3)).system()
    for shrinkage in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="shrinkage"):
            system.fit(shrinkage)
    constant = np.ones((40, 3), np.float32)
    with pytest.raises(ValueError, match="constant"):
        DiscriminantData.of(constant, labels, np.arange(3)).system().fit(0.5)


def test_three_valued_values_sum_exactly_in_float32(monkeypatch):
    # The FNE's -1 / 0 / 1: float32 products of integers are exact, and half float64's time.
    monkeypatch.setattr(ridge, "GRAM_ROW_BLOCK", 16)
    values, labels = dataset(120, 9, 4)
    three = np.sign(np.round(values - np.median(values, axis=0))).astype(np.float32)
    assert small_integers(three) and not small_integers(values)
    data = DiscriminantData.of(three, labels, np.arange(4))
    assert not data.centre.any()
    indicators = (labels[:, None] == np.arange(4)).astype(np.float64)
    exact = three.astype(np.float64)
    sums = exact.T @ indicators
    scatter = exact.T @ exact - (sums / indicators.sum(axis=0)) @ sums.T
    np.testing.assert_allclose(data.scatter, scatter, rtol=1e-13, atol=1e-11)
    fold = data.without(np.arange(0, 120, 3))
    kept = np.arange(120) % 3 != 0
    reference = scikit_learns(three[kept], labels[kept], 0.1)
    np.testing.assert_allclose(
        decision(fold.system().fit(0.1), three), reference.decision_function(three),
        rtol=1e-8, atol=1e-8,
    )  # fmt: skip


def test_a_kept_block_and_a_compact_copy_give_the_same_covariance():
    # `keep` reuses one rescaled block of the scatter between shrinkage values; `compact`
    # rounds the scatter to float32 (as the float32 fits that rank shrinkage values do).
    values, labels = dataset(200, 12, 3)
    data = DiscriminantData.of(values, labels, np.arange(3))
    columns, scale = np.array([0, 2, 5, 11]), np.linspace(0.5, 2.0, 12)
    fresh = data.system(columns, scale)
    kept = data.system(columns, scale, keep=True)
    for shrinkage in (1e-3, 0.4, 1.0):
        np.testing.assert_allclose(kept.covariance(shrinkage), fresh.covariance(shrinkage),
                                   rtol=1e-13)  # fmt: skip
    assert kept.scatter_block() is kept.scatter_block()
    assert fresh.scatter_block() is not fresh.scatter_block()
    # The whole unscaled scatter is the data's own matrix, never written.
    whole = data.system()
    before = data.scatter.copy()
    assert whole.scatter_block() is data.scatter
    whole.fit(0.2)
    np.testing.assert_array_equal(data.scatter, before)
    compact = data.compact()
    assert compact.scatter.dtype == np.float32 and compact.values.shape[0] == 0
    assert compact.values.base is None  # not a view keeping the rows in memory
    np.testing.assert_allclose(
        compact.system(columns, scale).covariance(0.1, np.float32),
        fresh.covariance(0.1), rtol=1e-5,
    )  # fmt: skip
    reference = scikit_learns(values[:, columns] * scale[columns], labels, 0.1)
    model = compact.system(columns, scale).fit(0.1)
    np.testing.assert_allclose(
        decision(model, values[:, columns]),
        reference.decision_function(values[:, columns] * scale[columns]),
        rtol=1e-4, atol=1e-4,
    )  # fmt: skip


def _folds_of(values, labels, n_classes, n_folds=3):
    data = DiscriminantData.of(values, labels, np.arange(n_classes))
    folds = []
    for fold in range(n_folds):
        held = np.arange(fold, len(labels), n_folds)
        folds.append((data.without(held).system(keep=True), values[held], labels[held]))
    return folds


def test_a_walk_over_the_shrinkage_grid_finds_the_exhaustive_choice_scoring_fewer_values():
    from cnn_feature_behavior.transfer.classifier import (
        FoldScores,
        choose_from_scores,
        score_discriminant,
        walk_shrinkage,
    )

    values, labels = dataset(300, 40, 4, seed=3)
    folds = _folds_of(values, labels, 4)
    grid = (1e-4, 1e-3, 1e-2, 0.1, 0.3, 0.6, 1.0)
    every = [
        FoldScores(*zip(*[score_discriminant(*fold, value) for value in grid])) for fold in folds
    ]
    every = [FoldScores(np.array(f.losses), f.predictions) for f in every]
    exhaustive = choose_from_scores("discriminant", grid, every, labels[np.concatenate(
        [np.arange(f, 300, 3) for f in range(3)])])  # fmt: skip
    for start in (None, 1e-4, 1.0):
        walked = walk_shrinkage(folds, grid, start)
        assert walked.shrinkage == exhaustive.shrinkage
        assert walked.cv_accuracy == exhaustive.cv_accuracy
        assert walked.cv_loss == pytest.approx(exhaustive.cv_loss)
        assert set(walked.cv_losses) < set(grid)  # fewer values than the grid


def test_a_walk_scores_its_start_and_both_neighbours_then_moves_while_it_improves(monkeypatch):
    from cnn_feature_behavior.transfer import classifier

    labels = np.zeros(4, int)
    # The pooled accuracy at each value of the grid: a local best at 0.01, the best at 1.0.
    accuracy = {1e-4: 0.25, 1e-3: 0.5, 1e-2: 0.75, 0.1: 0.5, 0.4: 0.5, 1.0: 1.0}
    asked = []

    def fake(system, held_values, held_labels, shrinkage):
        asked.append(shrinkage)
        right = int(round(accuracy[shrinkage] * 4))
        return 1.0 - shrinkage, np.array([0] * right + [1] * (4 - right))[: len(held_labels)]

    monkeypatch.setattr(classifier, "score_discriminant", fake)
    grid = tuple(accuracy)
    fold = (None, None, labels)
    choice = classifier.walk_shrinkage([fold], grid, start=0.1)
    # From 0.1: 0.01 (better) and 0.4 (tied), then 1e-3 (worse): it stops at the local best.
    assert choice.shrinkage == 0.01 and sorted(set(asked)) == [1e-3, 1e-2, 0.1, 0.4]
    assert not choice.c_at_grid_edge
    asked.clear()
    choice = classifier.walk_shrinkage([fold], grid, start=0.4)
    assert choice.shrinkage == 1.0 and choice.c_at_grid_edge
    assert sorted(set(asked)) == [0.1, 0.4, 1.0]


def test_principal_submatrix_and_log_loss_against_numpy_and_scipy():
    from scipy.special import logsumexp

    from cnn_feature_behavior.transfer.discriminant import log_loss, principal_submatrix

    rng = np.random.default_rng(5)
    half = rng.standard_normal((40, 40))
    symmetric = np.asfortranarray(half + half.T)
    index = np.array([0, 3, 4, 17, 39])
    block = principal_submatrix(symmetric, index)
    np.testing.assert_array_equal(block, symmetric[np.ix_(index, index)])
    assert block.flags.f_contiguous
    # Scores far apart (a float64 exp of them alone would overflow).
    scores = rng.standard_normal((30, 6)) * 400.0
    classes, labels = np.array([2, 4, 6, 8, 10, 12]), rng.choice([2, 4, 6, 8, 10, 12], 30)
    own = scores[np.arange(30), np.searchsorted(classes, labels)]
    expected = np.mean(logsumexp(scores, axis=1) - own)
    assert log_loss(scores, classes, labels) == pytest.approx(expected, rel=1e-12)
