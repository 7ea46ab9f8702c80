"""refit_configuration: one configuration's linear map, exactly the evaluation's refit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_transfer import N_CLASSES, SETTINGS, STRENGTH, planted

from cnn_feature_behavior.transfer.evaluation import evaluate_split
from cnn_feature_behavior.transfer.refit import refit_configuration
from cnn_feature_behavior.transfer.settings import LogisticRegressionSettings

NAMES = [f"class{k}" for k in range(N_CLASSES)]
ROWS = {
    "layer:conv1_1": ("layer", "conv1_1", None, None),
    "full_network": ("full_network", None, None, None),
    "fne": ("fne", None, None, None),
    "selection:dks_cover:0.1": ("full_network", None, "dks_cover", 0.1),
    "selection:anova_f:0.05:fne": ("fne", None, "anova_f", 0.05),
}


@pytest.mark.parametrize("solver", ["logistic_regression", "ridge", "discriminant"])
def test_a_configurations_map_is_the_evaluations_refit(solver):
    values, labels, is_train, layers = planted()
    settings = replace(SETTINGS, classifier=solver)
    evaluation = evaluate_split(values, labels, is_train, layers, NAMES, settings)
    results = evaluation.results
    for configuration, (embedding, layer, selection, fraction) in ROWS.items():
        found = (
            (results["embedding"] == embedding)
            & (results["layer"].fillna("") == (layer or ""))
            & (results["selection"].fillna("") == (selection or ""))
            & (results["fraction"].fillna(-1.0) == (fraction or -1.0))
        )
        (position,) = np.flatnonzero(found)
        linear = refit_configuration(
            values[is_train], labels[is_train], layers, NAMES, configuration, settings
        )
        row = results.iloc[position]
        strength = STRENGTH[solver]
        assert linear.solver == row["solver"] == solver
        assert list(linear.regularisation) == [strength]
        assert linear.regularisation[strength] == pytest.approx(row[strength]), configuration
        predicted = linear.predict(values[~is_train])
        agree = np.mean(predicted == evaluation.predictions[position])
        assert agree >= 0.99, configuration  # float64 scores here, float32 products there
        timing = evaluation.timings.iloc[position]
        assert linear.representation == timing["representation"], configuration
        copies = 2 if linear.representation == "root+raw" else 1
        assert linear.weights.shape == (copies * linear.columns.size, N_CLASSES)
        if selection is not None:
            selected = evaluation.fitted["selections"][(selection, None, fraction)]
            np.testing.assert_array_equal(linear.columns, selected)
        assert (linear.fne is not None) == (embedding == "fne")


def test_scores_are_the_standardised_columns_times_the_weights():
    values, labels, is_train, layers = planted()
    linear = refit_configuration(
        values[is_train], labels[is_train], layers, NAMES, "layer:conv1_1", SETTINGS
    )
    train = values[is_train][:, :60].astype(np.float64)
    standardised = (train - train.mean(axis=0)) / train.std(axis=0)
    expected = standardised @ linear.weights + linear.intercepts
    np.testing.assert_allclose(linear.scores(values[is_train]), expected, rtol=1e-5, atol=1e-6)


def test_unknown_configurations_are_named():
    values, labels, is_train, layers = planted()
    for name in ("layer:conv9_9", "selection:dks_cover:0.3", "selection:random:0.05", "fc"):
        with pytest.raises(ValueError, match="unknown configuration"):
            refit_configuration(values[is_train], labels[is_train], layers, NAMES, name, SETTINGS)


def test_settings_reach_the_refit():
    values, labels, is_train, layers = planted()
    settings = replace(
        SETTINGS,
        logistic_regression=LogisticRegressionSettings(c_grid=(0.5,)),
        classifier="logistic_regression",
    )
    settings = replace(settings, c_selection=replace(settings.c_selection, widen=0))
    linear = refit_configuration(values[is_train], labels[is_train], layers, NAMES, "fne", settings)
    assert linear.regularisation == {"regularisation_c": 0.5}


def test_a_discriminants_map_takes_the_square_roots_of_the_values():
    values, labels, is_train, layers = planted()
    settings = replace(SETTINGS, classifier="discriminant")
    settings = replace(
        settings, discriminant=replace(settings.discriminant, root_raw_max_features=0)
    )
    linear = refit_configuration(
        values[is_train], labels[is_train], layers, NAMES, "layer:conv1_1", settings
    )
    assert linear.representation == "root" and linear.solver == "discriminant"
    train = values[is_train][:, :60].astype(np.float64)
    roots = np.sign(train) * np.sqrt(np.abs(train))
    standardised = (roots - roots.mean(axis=0)) / roots.std(axis=0)
    expected = standardised @ linear.weights + linear.intercepts
    np.testing.assert_allclose(linear.scores(values[is_train]), expected, rtol=1e-4, atol=1e-5)
