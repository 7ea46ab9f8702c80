"""Few-shot accuracy per embedding: against a hand computation, scikit-learn and scipy."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression

from cnn_feature_behavior.transfer.few_shot import (
    LOGISTIC,
    NEAREST_CLASS_MEAN,
    FewShotSettings,
    draw_episodes,
    few_shot_results,
    logistic_regression,
    nearest_class_mean,
)
from cnn_feature_behavior.transfer.intervals import mean_interval, tied_with_best

# Four training images (two per class) and three test images, one layer of two features.
TINY = np.array(
    [[1, 2], [3, 2], [5, 6], [7, 6], [2, 2], [6, 5], [4.5, 4]],
    np.float32,
)
TINY_LABELS = np.array([0, 0, 1, 1, 0, 1, 0])
TINY_TRAIN = {0: np.array([True] * 4 + [False] * 3)}


def test_two_shots_of_two_classes_by_hand():
    """k = 2 is every training image, so every episode is the same and can be done by hand.

    Standardised on the four support images (feature means 4 and 4, population deviations
    sqrt(5) and 2): class means (-2/sqrt5, -1) and (2/sqrt5, 1). Test images: (2, 2) is
    (-2/sqrt5, -1), class 0's mean: right. (6, 5) is (2/sqrt5, 0.5): class 1, right.
    (4.5, 4) is (0.5/sqrt5, 0): nearer class 1's mean, but it is of class 0: wrong. 2 of 3.
    The FNE of those values: support (-1,-1), (-1,-1), (1,1), (1,1), test (-1,-1), (1,1),
    (1, 0): nearest means the same, again 2 of 3.
    """
    settings = FewShotSettings(shots=(2,), episodes=3, methods=(NEAREST_CLASS_MEAN,))
    table = few_shot_results(TINY, TINY_LABELS, ["a", "a"], TINY_TRAIN, settings)
    assert table["embedding"].tolist() == ["layer", "full_network", "fne"]
    assert table["mean"].tolist() == pytest.approx([2 / 3] * 3)
    assert (table["std"] == 0).all() and (table["episodes"] == 3).all()
    assert table["ci_low"].tolist() == pytest.approx([2 / 3] * 3)
    assert (table["n_support"] == 4).all() and (table["n_test"] == 3).all()
    assert table["tied_with_best"].all()


def test_nearest_class_mean_by_hand():
    support = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    predicted = nearest_class_mean(support, np.array([3, 3, 7]), np.array([[1.0, 1.0], [6.0, 6.0]]))
    # Means (1, 0) and (10, 10): (1, 1) is 1 from the first; (6, 6) is sqrt(61) from the
    # first and sqrt(32) from the second.
    assert predicted.tolist() == [3, 7]


@pytest.mark.parametrize(("n_images", "n_features"), [(40, 200), (120, 30)])
def test_logistic_regression_predicts_as_scikit_learn(n_images, n_features):
    """Row space (images <= half the features) or not: scikit-learn's own fit on the same
    matrix predicts the same classes."""
    rng = np.random.default_rng(0)
    labels = np.arange(n_images) % 4
    centres = rng.normal(size=(4, n_features))
    support = (centres[labels] + rng.normal(scale=2.0, size=(n_images, n_features))).astype(
        np.float32
    )
    test = (centres[np.arange(400) % 4] + rng.normal(scale=2.0, size=(400, n_features))).astype(
        np.float32
    )
    predicted, converged = logistic_regression(support, labels, test, 0.5, 3000, 1e-6)
    reference = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(support, labels)
    assert converged
    assert np.mean(predicted == reference.predict(test)) >= 0.995


def test_episodes_draw_k_training_images_of_each_class_from_their_split():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 12)
    is_train = {r: rng.random(36) < 0.6 for r in range(2)}
    for r in is_train:  # at least 3 training images of each class
        for c in range(3):
            is_train[r][np.flatnonzero(labels == c)[:3]] = True
    episodes = draw_episodes(labels, is_train, FewShotSettings(shots=(1, 3), episodes=5))
    assert [(e.shots, e.number, e.repetition) for e in episodes[:3]] == [
        (1, 0, 0),
        (1, 1, 1),
        (1, 2, 0),
    ]
    for episode in episodes:
        train = is_train[episode.repetition]
        assert train[episode.support].all() and not train[episode.test].any()
        assert np.bincount(labels[episode.support]).tolist() == [episode.shots] * 3
        assert np.unique(episode.support).size == episode.support.size
        assert (episode.test == np.flatnonzero(~train)).all()
    again = draw_episodes(labels, is_train, FewShotSettings(shots=(1, 3), episodes=5))
    assert all((a.support == b.support).all() for a, b in zip(episodes, again))


def test_a_k_that_a_class_cannot_fill_is_left_out_with_a_warning(caplog):
    settings = FewShotSettings(shots=(1, 3), episodes=2)
    with caplog.at_level(logging.WARNING):
        table = few_shot_results(TINY, TINY_LABELS, ["a", "b"], TINY_TRAIN, settings)
    assert set(table["k"]) == {1}
    assert "k = 3 left out" in caplog.text
    assert set(table["method"]) == {NEAREST_CLASS_MEAN, LOGISTIC}
    assert table.loc[table["method"] == LOGISTIC, "regularisation_c"].eq(1.0).all()
    assert table.loc[table["method"] == NEAREST_CLASS_MEAN, "regularisation_c"].isna().all()


def test_mean_interval_is_the_t_interval():
    values = np.array([0.5, 0.7, 0.65, 0.8, 0.55])
    mean, low, high = mean_interval(values)
    half = stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / math.sqrt(5)
    assert (mean, low, high) == pytest.approx((0.64, 0.64 - half, 0.64 + half))
    assert np.isnan(mean_interval(np.array([0.3]))[1])


def test_tied_with_best_is_a_paired_comparison():
    # b is always 0.01 below a: paired, clearly worse, though the two ranges overlap.
    a = np.array([0.50, 0.70, 0.60, 0.80, 0.55, 0.65])
    b = a - 0.01
    c = a + np.array([0.02, -0.03, 0.01, -0.01, 0.02, -0.02])
    assert tied_with_best(np.vstack([a, b, c])).tolist() == [True, False, True]


def test_settings_name_the_bad_parameter():
    with pytest.raises(ValueError, match="few_shot: unknown key"):
        FewShotSettings.from_params({"shot": [1]})
    with pytest.raises(ValueError, match="few_shot.shots"):
        FewShotSettings.from_params({"shots": [0, 5]})
    with pytest.raises(ValueError, match="few_shot.methods"):
        FewShotSettings.from_params({"methods": ["knn"]})
    with pytest.raises(ValueError, match="few_shot.episodes"):
        FewShotSettings.from_params({"episodes": 1})
    settings = FewShotSettings.from_params(
        {"logistic_regression": {"C": 0.1}}, {"positive": 0.2, "negative": -0.3}
    )
    assert settings.logistic_c == 0.1 and settings.fne_positive == 0.2


def test_a_logistic_regression_over_the_budget_is_left_out_with_a_warning(caplog):
    # Two classes, k = 2: four support images; one layer of one feature (4 x 1 x 2 = 8), the
    # other of two, the full network of three (4 x 3 x 2 = 24): a budget of 10 keeps the first.
    values = np.hstack([TINY, TINY[:, :1] * 2]).astype(np.float32)
    settings = FewShotSettings(shots=(2,), episodes=2, logistic_budget=10)
    with caplog.at_level(logging.WARNING):
        table = few_shot_results(values, TINY_LABELS, ["a", "b", "b"], TINY_TRAIN, settings)
    logistic = table[table["method"] == LOGISTIC]
    assert logistic["layer"].tolist() == ["a"]
    assert len(table[table["method"] == NEAREST_CLASS_MEAN]) == 4
    assert "layer:b at k = 2" in caplog.text and "fne at k = 2" in caplog.text
