"""The refit of one configuration against the transfer evaluation's row for it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cnn_feature_behavior.export.configuration import configuration_rows
from cnn_feature_behavior.export.linear_map import refit_linear_map
from cnn_feature_behavior.transfer.evaluation import check_inputs, evaluate_split
from cnn_feature_behavior.transfer.named_embeddings import Configuration
from cnn_feature_behavior.transfer.settings import TransferSettings

N_CLASSES, PER_CLASS, PER_LAYER = 5, 30, 40
REPETITION = 1  # the evaluation's seed is [transfer.seed (2018), repetition]
SPELLINGS = (
    "layer:conv1_1",
    "layer:conv2_1",
    "full_network",
    "fne",
    "selection:dks_count:0.05",
    "selection:dks_cover:0.05:fne",
    "selection:random:0.05",
)


def planted():
    """Class k's feature 7k (conv1_1) shifted up by 2.5, the rest N(0, 1); half of each class
    trains."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    values = rng.standard_normal((labels.size, 2 * PER_LAYER)).astype(np.float32)
    for k in range(N_CLASSES):
        values[labels == k, 7 * k] += 2.5
    is_train = np.tile(np.arange(PER_CLASS) < PER_CLASS // 2, N_CLASSES)
    layers = np.array(["conv1_1"] * PER_LAYER + ["conv2_1"] * PER_LAYER)
    return values, labels, is_train, layers


def settings(classifier: str) -> TransferSettings:
    return TransferSettings.from_params(
        {
            "classifier": classifier,
            "fractions": [0.05, 0.5, 1.0],
            "logistic_regression": {"c_grid": [0.01, 0.1, 1.0]},
            "rankings": ["dks_count", "dks_cover"],
        },
        {"bins": 20, "workers": 1},
        {"repetitions": 1, "seed": 3},
    )


@pytest.mark.parametrize("classifier", ["ridge", "logistic_regression", "linear_svc"])
def test_the_refit_is_the_evaluations_row(classifier):
    values, labels, is_train, layers = planted()
    names = [f"class{k}" for k in range(N_CLASSES)]
    chosen = settings(classifier)
    results = evaluate_split(
        values, labels, is_train, layers, names, chosen, seed=[2018, REPETITION]
    ).results
    inputs = check_inputs(values, labels, is_train, layers, names, None)
    for spelling in SPELLINGS:
        configuration = Configuration.parse(spelling, "export.embedding")
        row = configuration_rows(configuration, results).iloc[0]
        linear_map = refit_linear_map(inputs, chosen, configuration, REPETITION)
        predictions = linear_map.predict(values[~is_train])
        accuracy = np.mean(
            np.array(linear_map.class_names)[predictions] == np.array(names)[labels[~is_train]]
        )
        assert accuracy == pytest.approx(row["accuracy"]), (spelling, classifier)
        assert linear_map.regularisation_c == row["regularisation_c"], spelling
        assert linear_map.solver == row["solver"], spelling
        assert linear_map.columns.size == row["n_features"], spelling
        assert (linear_map.fne_thresholds is not None) == configuration.three_valued


def test_the_map_standardises_with_the_training_images_and_reads_its_columns():
    values, labels, is_train, layers = planted()
    names = [f"class{k}" for k in range(N_CLASSES)]
    inputs = check_inputs(values, labels, is_train, layers, names, None)
    linear_map = refit_linear_map(
        inputs,
        settings("ridge"),
        Configuration.parse("layer:conv2_1", "export.embedding"),
        REPETITION,
    )
    np.testing.assert_array_equal(linear_map.columns, np.arange(PER_LAYER, 2 * PER_LAYER))
    train = values[is_train][:, PER_LAYER:].astype(np.float64)
    np.testing.assert_allclose(linear_map.mean, train.mean(axis=0))
    np.testing.assert_allclose(linear_map.scale, train.std(axis=0))
    # Test images change nothing that is fitted.
    moved = values.copy()
    moved[~is_train] += 100.0
    inputs = check_inputs(moved, labels, is_train, layers, names, None)
    again = refit_linear_map(
        inputs,
        settings("ridge"),
        Configuration.parse("layer:conv2_1", "export.embedding"),
        REPETITION,
    )
    np.testing.assert_array_equal(again.weights, linear_map.weights)


def test_an_unknown_layer_names_the_layers():
    values, labels, is_train, layers = planted()
    inputs = check_inputs(values, labels, is_train, layers, ["a", "b", "c", "d", "e"], None)
    with pytest.raises(ValueError, match="its layers: conv1_1, conv2_1"):
        refit_linear_map(
            inputs,
            settings("ridge"),
            Configuration.parse("layer:fc6", "export.embedding"),
            REPETITION,
        )


def test_a_fraction_outside_the_evaluations_curve_is_refitted_too():
    values, labels, is_train, layers = planted()
    inputs = check_inputs(values, labels, is_train, layers, ["a", "b", "c", "d", "e"], None)
    configuration = Configuration.parse("selection:dks_count:0.2", "export.embedding")
    linear_map = refit_linear_map(inputs, settings("ridge"), configuration, REPETITION)
    assert linear_map.columns.size == 16


def test_settings_are_not_changed_by_a_refit():
    chosen = settings("ridge")
    before = dataclasses.asdict(chosen)
    values, labels, is_train, layers = planted()
    inputs = check_inputs(values, labels, is_train, layers, ["a", "b", "c", "d", "e"], None)
    refit_linear_map(
        inputs,
        chosen,
        Configuration.parse("selection:dks_count:0.2", "export.embedding"),
        REPETITION,
    )
    assert dataclasses.asdict(chosen) == before
