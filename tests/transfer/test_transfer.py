"""Transfer evaluation: row-space classifier against scikit-learn, DKS selections on planted
data, no test information in anything fitted, and the pipeline through Kedro's runner."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from builders.transfer_probes import probe_data
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss

from cnn_feature_behavior.pipelines.transfer import create_pipeline
from cnn_feature_behavior.transfer.classifier import (
    ProbeData,
    _Probe,
    accuracies,
    fit_probe,
    gram_matrix,
    row_space_basis,
    solver_for,
)
from cnn_feature_behavior.transfer.embeddings import fne_values
from cnn_feature_behavior.transfer.evaluation import RESULT_COLUMNS, evaluate_split
from cnn_feature_behavior.transfer.multinomial import MultinomialLogisticRegression
from cnn_feature_behavior.transfer.settings import LogisticRegressionSettings, TransferSettings
from cnn_feature_behavior.transfer.splits import stratified_folds

N_CLASSES, PER_CLASS, PER_LAYER = 6, 40, 60
FRACTIONS = (0.05, 0.1, 1.0)


def planted(seed: int = 0):
    """Class k's feature 10k (conv1_1) is shifted up by 3; everything else is N(0, 1) noise.

    Half of each class trains; features 0..59 are layer conv1_1, 60..119 conv2_1.
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    values = rng.standard_normal((labels.size, 2 * PER_LAYER)).astype(np.float32)
    for k in range(N_CLASSES):
        values[labels == k, 10 * k] += 3.0
    is_train = np.tile(np.arange(PER_CLASS) < PER_CLASS // 2, N_CLASSES)
    layers = np.array(["conv1_1"] * PER_LAYER + ["conv2_1"] * PER_LAYER)
    return values, labels, is_train, layers


SETTINGS = TransferSettings.from_params(
    {
        "fractions": list(FRACTIONS),
        "logistic_regression": {"c_grid": [0.01, 0.1, 1.0]},
        "rankings": ["dks_count", "dks_cover"],
        "random_draws": 2,
    },
    {"bins": 20, "workers": 1},
    {"repetitions": 1, "seed": 3},
)


def evaluate(labels: np.ndarray, settings: TransferSettings = SETTINGS):
    values, _, is_train, layers = planted()
    names = [f"class{k}" for k in range(N_CLASSES)]
    return evaluate_split(values, labels, is_train, layers, names, settings, repetition=0)


@pytest.fixture(scope="module")
def evaluated():
    return evaluate(planted()[1])


def test_row_space_solution_is_scikit_learns_on_the_full_matrix():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 10)
    train = rng.standard_normal((40, 150)).astype(np.float32) + labels[:, None] * 0.1
    test = (
        rng.standard_normal((80, 150)).astype(np.float32)
        + np.repeat(np.arange(4), 20)[:, None] * 0.1
    )
    test_labels = np.repeat(np.arange(4), 20)
    settings = TransferSettings.from_params(
        {
            "classifier": "logistic_regression",
            "c_selection": {"widen": 0},
            "logistic_regression": {
                "c_grid": [0.05],
                "tol": 1e-10,
                "relative_tol": 0.0,  # converged: the same predictions, image for image
                "max_iter": 5000,
            },
        }
    )
    data = probe_data(train, labels, test, stratified_folds(labels, 4, 0))
    ours = fit_probe(data, "logistic_regression", settings)
    direct = LogisticRegression(C=0.05, tol=1e-10, max_iter=5000).fit(train, labels)
    np.testing.assert_array_equal(ours.predictions, direct.predict(test))
    assert accuracies(test_labels, ours.predictions) == pytest.approx(
        (
            accuracy_score(test_labels, direct.predict(test)),
            balanced_accuracy_score(test_labels, direct.predict(test)),
        )
    )
    # The weights themselves: Z Z^T = X X^T, and w = X^T Z^-T a reproduces scikit-learn's w.
    gram = train.astype(np.float64) @ train.T.astype(np.float64)
    np.testing.assert_allclose(np.tril(gram_matrix(train)), np.tril(gram))  # its lower triangle
    basis, to_weights, from_weights, triangular = row_space_basis(train, gram_matrix(train))
    assert triangular and not np.triu(basis, 1).any()
    np.testing.assert_allclose(basis.astype(np.float64) @ basis.T, gram, rtol=1e-4, atol=1e-3)
    reduced = LogisticRegression(C=0.05, tol=1e-10, max_iter=5000).fit(basis, labels)
    np.testing.assert_allclose(to_weights(reduced.coef_).T, direct.coef_, atol=2e-3)
    np.testing.assert_allclose(reduced.intercept_, direct.intercept_, atol=2e-3)
    np.testing.assert_allclose(from_weights(direct.coef_.T), reduced.coef_, atol=2e-3)


def test_singular_gram_falls_back_to_the_spanned_directions():
    rng = np.random.default_rng(2)
    rows = rng.standard_normal((10, 50))
    values = np.vstack([rows, rows[:3]]).astype(np.float32)  # 13 images, rank 10
    gram = values.astype(np.float64) @ values.T.astype(np.float64)
    basis, to_weights, from_weights, triangular = row_space_basis(values, gram)
    assert basis.shape == (13, 10) and not triangular
    coef = rng.standard_normal((3, 10))
    weights = to_weights(coef)
    np.testing.assert_allclose(values @ weights, basis @ coef.T, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(weights, axis=0), np.linalg.norm(coef, axis=1))
    np.testing.assert_allclose(from_weights(weights), coef, atol=1e-6)


def test_measures():
    labels, predicted = np.array([0, 0, 0, 1, 2, 2]), np.array([0, 1, 0, 1, 0, 2])
    assert accuracies(labels, predicted) == pytest.approx(
        (accuracy_score(labels, predicted), balanced_accuracy_score(labels, predicted))
    )


def test_held_out_score_is_scikit_learns_log_loss_and_predictions():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 8)
    values = rng.standard_normal((24, 5)) + labels[:, None]
    probe = _Probe(values[:18], labels[:18], TransferSettings())
    probe.fit(0.1)
    loss, predictions = probe.held_out(values[18:], labels[18:])
    np.testing.assert_array_equal(predictions, probe.model.predict(values[18:]))
    expected = log_loss(labels[18:], probe.model.predict_proba(values[18:]), labels=[0, 1, 2])
    assert loss == pytest.approx(expected, rel=1e-6)


def test_tiny_unbalanced_training_split_does_not_collapse_to_the_largest_class():
    # flowers102-mini's official split: 1 to 9 training images per class, so the held-out
    # part is a few images whose accuracy ties across C; the smallest C then predicted the
    # largest class for every test image. C is now chosen by the held-out log-loss.
    rng = np.random.default_rng(0)
    sizes, centres = [9, 1, 2, 3, 1, 2], 4.0 * np.eye(6, 40)
    train_labels = np.repeat(np.arange(6), sizes)
    test_labels = np.repeat(np.arange(6), 15)
    train = centres[train_labels] + rng.standard_normal((train_labels.size, 40))
    test = centres[test_labels] + rng.standard_normal((test_labels.size, 40))
    settings = TransferSettings()
    folds = stratified_folds(train_labels, settings.c_selection.folds, 0)
    data = probe_data(train, train_labels, test, folds)
    solver = solver_for(*train.shape, 6, settings)
    for result in (
        fit_probe(data, "logistic_regression", settings),
        fit_probe(data, solver, settings),
    ):
        assert len(set(result.predictions.tolist())) > 1
        assert accuracies(test_labels, result.predictions)[0] > 0.5


def test_fne_thresholds_are_exact():
    up, down = np.float32(0.15), np.float32(-0.25)
    above, below = np.nextafter(up, np.float32(1)), np.nextafter(down, np.float32(-1))
    x = np.array([[up, above, down, below, 0.0]], np.float32)
    np.testing.assert_array_equal(fne_values(x, 0.15, -0.25), [[0, 1, 0, -1, 0]])


def test_dks_selection_keeps_the_planted_features_and_beats_random(evaluated):
    planted_features = {10 * k for k in range(N_CLASSES)}
    # A planted feature also passes t- for other classes (its class lifts the rest's EDF), so
    # noise can only tie it by chance: all six are in the top 10%, nearly all in the top 5%.
    selections = evaluated.fitted["selections"]
    assert planted_features <= set(selections[("dks_count", None, 0.1)].tolist())
    top = set(selections[("dks_count", None, 0.05)].tolist())
    assert len(top & planted_features) >= N_CLASSES - 1
    assert set(evaluated.fitted["rankings"]["dks_count"][:6].tolist()) == top
    assert 0 < evaluated.fitted["t_plus"] < 1 and -1 < evaluated.fitted["t_minus"] < 0
    results = evaluated.results.set_index(["embedding", "layer", "selection", "fraction", "draw"])
    dks = results.loc[("full_network", None, "dks_count", 0.05, pd.NA), "accuracy"]
    random = results.loc[("full_network", None, "random", 0.05), "accuracy"]
    assert dks > 0.7 and (dks > random + 0.3).all()
    assert (
        results.loc[("layer", "conv1_1", None, None, pd.NA), "accuracy"]
        > results.loc[("layer", "conv2_1", None, None, pd.NA), "accuracy"] + 0.3
    )  # conv2_1 is noise: about chance
    # 100% of the features, whichever the order: the full network's own fit.
    full = evaluated.results[evaluated.results["n_features"] == 2 * PER_LAYER]
    assert full.groupby("embedding")["accuracy"].nunique().eq(1).all()
    assert list(evaluated.results.columns) == list(RESULT_COLUMNS)
    # Layers, full network, FNE; per kind 2 DKS rankings, ANOVA-F and 2 random draws per size.
    assert len(evaluated.results) == 2 + 2 + 2 * (2 + 1 + 2) * len(FRACTIONS)
    # The class-covering ranking gives each class its best feature first: the planted ones.
    assert set(evaluated.fitted["rankings"]["dks_cover"][:N_CLASSES].tolist()) == planted_features


def test_no_test_image_reaches_anything_fitted(evaluated):
    values, labels, is_train, layers = planted()
    changed = labels.copy()
    changed[~is_train] = (labels[~is_train] + 1) % N_CLASSES  # every test label changed
    # ... and every test image's values: a standardisation (or anything else) fitted on every
    # image would change with them.
    other_values = values.copy()
    rng = np.random.default_rng(11)
    other_values[~is_train] = rng.standard_normal(((~is_train).sum(), values.shape[1])) * 5 + 2
    names = [f"class{k}" for k in range(N_CLASSES)]
    other = evaluate_split(other_values, changed, is_train, layers, names, SETTINGS)
    for name in ("mean", "scale", "fold_means", "dks", "random"):
        np.testing.assert_array_equal(other.fitted[name], evaluated.fitted[name], err_msg=name)
    for rankings, again in zip(
        [evaluated.fitted["rankings"], *evaluated.fitted["fold_rankings"]],
        [other.fitted["rankings"], *other.fitted["fold_rankings"]],
    ):
        for ranking, order in rankings.items():
            np.testing.assert_array_equal(again[ranking], order, err_msg=ranking)
    assert (other.fitted["t_plus"], other.fitted["t_minus"]) == (
        evaluated.fitted["t_plus"],
        evaluated.fitted["t_minus"],
    )
    for key, kept in evaluated.fitted["selections"].items():
        np.testing.assert_array_equal(other.fitted["selections"][key], kept, err_msg=str(key))
    for fold, again in zip(evaluated.fitted["folds"], other.fitted["folds"]):
        for part, same in zip(fold, again):
            np.testing.assert_array_equal(part, same)
    for column in ("regularisation_c", "solver", "c_at_grid_edge", "cv_loss", "cv_accuracy"):
        pd.testing.assert_series_equal(other.results[column], evaluated.results[column])
    # ... while the measures do read the test labels.
    assert not np.allclose(other.results["accuracy"], evaluated.results["accuracy"])
    # The rows the verdict names are chosen without them: the same best layer and selection.
    from cnn_feature_behavior.transfer.comparisons import best_rows

    named = best_rows(evaluated.results)
    assert best_rows(other.results) == named and None not in named.values()


def test_a_non_finite_embedding_value_is_an_error_naming_its_feature():
    values, labels, is_train, layers = planted()
    values[3, 7] = np.inf
    names = [f"class{k}" for k in range(N_CLASSES)]
    with pytest.raises(ValueError, match="1 feature"):
        evaluate_split(values, labels, is_train, layers, names, SETTINGS)


def test_unknown_parameters_are_named():
    with pytest.raises(ValueError, match="unknown key.*'clasifier'"):
        TransferSettings.from_params({"clasifier": "linear_svc"})
    with pytest.raises(ValueError, match="transfer.classifier must be one of"):
        TransferSettings.from_params({"classifier": "svm"})
    with pytest.raises(ValueError, match="transfer.rankings must be distinct names among"):
        TransferSettings.from_params({"rankings": ["dks"]})
    with pytest.raises(ValueError, match=r"transfer.ridge: unknown key\(s\) \['cgrid'\]"):
        TransferSettings.from_params({"ridge": {"cgrid": [1.0]}})
    with pytest.raises(ValueError, match=r"c_selection: unknown key\(s\) \['holdout_fraction'\]"):
        TransferSettings.from_params({"c_selection": {"holdout_fraction": 0.2}})
    with pytest.raises(ValueError, match="transfer.c_selection.folds must be an integer >= 2"):
        TransferSettings.from_params({"c_selection": {"folds": 1}})
    with pytest.raises(ValueError, match="transfer.random_draws must be an integer >= 1"):
        TransferSettings.from_params({"random_draws": 0})
    with pytest.raises(ValueError, match="transfer.baselines must be distinct names among"):
        TransferSettings.from_params({"baselines": ["chi2"]})


class KeptMemoryDataset(MemoryDataset):
    def _release(self) -> None:
        pass


def test_pipeline_through_the_runner_writes_the_contract_table():
    values, labels, _, layers = planted()
    ids = [f"class{label}/img{i:03d}" for i, label in enumerate(labels)]
    features = [f"{layer}/n{i % PER_LAYER}" for i, layer in enumerate(layers)]
    params = {
        "split": {"use_official": True, "train_per_class": 8, "repetitions": 2, "seed": 1},
        "fractions": [0.05, 1.0],
        "logistic_regression": {"c_grid": [0.1, 1.0]},
        "rankings": ["dks_count"],
        "random_draws": 2,
    }
    catalog = DataCatalog(
        {
            "embedding": MemoryDataset(
                pd.DataFrame(values, index=pd.Index(ids, name="image_id"), columns=features)
            ),
            "image_index": MemoryDataset(
                pd.DataFrame(
                    {
                        "image_id": ids,
                        "path": [f"{i}.jpg" for i in ids],
                        "label": labels,
                        "class_name": [f"class{label}" for label in labels],
                        "split": None,
                    }
                )
            ),
            "feature_manifest": MemoryDataset(
                pd.DataFrame(
                    {
                        "feature": features,
                        "layer": layers,
                        "filter": np.arange(layers.size) % PER_LAYER,
                        "layer_kind": "conv",
                    }
                )
            ),
            "params:transfer": MemoryDataset(params),
            "params:transfer.split": MemoryDataset(params["split"]),
            "params:dks": MemoryDataset({"bins": 20, "workers": 1}),
            "params:calibration": MemoryDataset({"repetitions": 1, "seed": 0}),
            "params:dataset": MemoryDataset("synthetic"),
            "params:source_model": MemoryDataset("vgg16_imagenet"),
            "transfer_splits": KeptMemoryDataset(),
            "transfer_results": KeptMemoryDataset(),
            "transfer_comparisons": KeptMemoryDataset(),
        }
    )
    pipeline = create_pipeline().only_nodes("transfer.split_images", "transfer.evaluate_transfer")
    SequentialRunner().run(pipeline, catalog)
    results = catalog.load("transfer_results")
    from cnn_feature_behavior.reporting.transfer_summary import WRITTEN_COLUMNS as CONTRACT
    from cnn_feature_behavior.reporting.transfer_summary import check_results

    check_results(results)
    assert list(results.columns) == list(CONTRACT)
    # 2 layers, full network, FNE; per kind dks_count, anova_f and 2 random draws at 2 sizes.
    assert results["repetition"].tolist() == [0] * 20 + [1] * 20
    assert set(results["split_source"]) == {"seeded"}
    assert (results["n_train"] == N_CLASSES * 8).all()
    assert (results["n_test"] == N_CLASSES * (PER_CLASS - 8)).all()
    assert results["layer"].isna().sum() == 36 and results["fraction"].isna().sum() == 8
    assert results.loc[results["selection"] == "random", "draw"].tolist() == [0, 0, 1, 1] * 4
    at_5 = results[(results["embedding"] == "full_network") & (results["fraction"] == 0.05)]
    by_selection = at_5.pivot_table(index="repetition", columns="selection", values="accuracy")
    assert (by_selection["dks_count"] > by_selection["random"] + 0.2).all()
    compared = catalog.load("transfer_comparisons")
    from cnn_feature_behavior.transfer.comparisons import COMPARISON_COLUMNS

    assert list(compared.columns) == list(COMPARISON_COLUMNS)
    dks_against_random = compared[
        (compared["embedding"] == "full_network")
        & (compared["ranking"] == "dks_count")
        & (compared["baseline"] == "random")
    ]
    assert dks_against_random["verdict"].tolist() == ["better"]


def test_linear_svc_option_is_the_fne_codes_fixed_c():
    settings = TransferSettings.from_params(
        {"classifier": "linear_svc", "fractions": [1.0], "rankings": ["dks_mean_abs"]},
        {"bins": 20, "workers": 1},
    )
    results = evaluate(planted()[1], settings).results
    assert set(results["classifier"]) == {"linear_svc"} == set(results["solver"])
    assert set(results["regularisation_c"]) == {1.0}
    assert set(results["selection"].dropna()) == {"dks_mean_abs", "anova_f", "random"}
    assert results.loc[results["layer"] == "conv1_1", "accuracy"].iloc[0] > 0.5


# --- Defects found in review (each failed before its fix) ----------------------------------------


@pytest.mark.parametrize("classifier", ["auto", "ridge", "logistic_regression", "discriminant"])
def test_two_classes_work(classifier):
    values, labels, is_train, layers = planted()
    two = labels < 2
    settings = TransferSettings.from_params(
        {"fractions": [0.05, 1.0], "classifier": classifier, "random_draws": 1},
        {"bins": 20, "workers": 1},
        {"repetitions": 1, "seed": 3},
    )
    evaluation = evaluate_split(
        values[two], labels[two], is_train[two], layers, ["a", "b"], settings
    )
    results = evaluation.results.set_index(["embedding", "layer", "selection", "fraction"])
    # Class 0's feature 0 and class 1's feature 10 (conv1_1) are planted: both classes found.
    assert results.loc[("layer", "conv1_1", None, None), "accuracy"] > 0.75
    assert results.loc[("layer", "conv1_1", None, None), "mean_per_class_accuracy"] > 0.75


def test_row_space_and_full_space_logistic_regression_agree():
    # 400 images x 1,200 features, 20 classes, C = 1: at tol 1e-4 the two formulations disagreed
    # on 5.6% of the test predictions.
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((20, 1200)) * 0.15
    labels = np.repeat(np.arange(20), 20)
    test_labels = np.repeat(np.arange(20), 50)
    train = (centres[labels] + rng.standard_normal((400, 1200))).astype(np.float32)
    test = (centres[test_labels] + rng.standard_normal((1000, 1200))).astype(np.float32)
    data = probe_data(train, labels, test, stratified_folds(labels, 3, 0))
    predicted = {}
    for row_space in (True, False):
        settings = TransferSettings.from_params(
            {
                "classifier": "logistic_regression",
                "c_selection": {"widen": 0},
                "logistic_regression": {"c_grid": [1.0], "row_space": row_space},
            }
        )
        predicted[row_space] = fit_probe(data, "logistic_regression", settings).predictions
    assert np.mean(predicted[True] != predicted[False]) <= 0.002


def test_row_space_only_where_it_saves():
    from cnn_feature_behavior.transfer.classifier import use_row_space

    settings = TransferSettings()
    assert not use_row_space(12288, 12416, settings)  # caltech256: nothing to save
    assert use_row_space(240, 4224, settings)  # the digits study: 18 times smaller
    values = np.random.default_rng(0).standard_normal((90, 100)).astype(np.float32)
    probe = _Probe(values, np.repeat(np.arange(3), 30), settings)
    assert probe.design is values and probe.to_weights is None


def test_no_fold_sees_its_held_out_rows(monkeypatch):
    # Each fold's standardisation, DKS rankings, t+ / t- and ANOVA-F order are its training
    # part's alone, and its classifiers are fitted on its training part's rows only: changing a
    # fold's held-out images changes nothing of what that fold fits.
    from cnn_feature_behavior.transfer import classifier

    values, labels, is_train, layers = planted()
    names = [f"class{k}" for k in range(N_CLASSES)]
    seen = []
    original = classifier._choose_logistic_c

    def recording(data, *args):
        seen.append([(fold.values.shape[0], fold.held_values.shape[0]) for fold in data.folds])
        return original(data, *args)

    monkeypatch.setattr(classifier, "_choose_logistic_c", recording)
    first = evaluate_split(values, labels, is_train, layers, names, SETTINGS)
    folds, train_rows = first.fitted["folds"], np.flatnonzero(is_train)
    assert len(folds) == SETTINGS.c_selection.folds == 3
    for (fit, held), mean in zip(folds, first.fitted["fold_means"]):
        assert np.intersect1d(fit, held).size == 0 and fit.size + held.size == train_rows.size
        expected = values[train_rows[fit]].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(mean, expected, rtol=1e-6)
    assert all(sizes == [(fit.size, held.size) for fit, held in folds] for sizes in seen)
    fit, held = folds[0]
    changed = values.copy()
    changed[train_rows[held]] = (
        np.random.default_rng(4).standard_normal((held.size, values.shape[1])) * 4 + 1
    )
    second = evaluate_split(changed, labels, is_train, layers, names, SETTINGS)
    np.testing.assert_array_equal(second.fitted["fold_means"][0], first.fitted["fold_means"][0])
    for ranking, order in first.fitted["fold_rankings"][0].items():
        np.testing.assert_array_equal(second.fitted["fold_rankings"][0][ranking], order)
    # ... while the other folds, whose training parts hold those images, do see them.
    assert not np.array_equal(second.fitted["fold_means"][1], first.fitted["fold_means"][1])
    assert not np.array_equal(second.fitted["mean"], first.fitted["mean"])


def test_stratified_folds_deal_each_class_evenly_and_hold_each_image_out_once():
    labels = np.repeat(np.arange(5), [1, 2, 7, 10, 23])
    folds = stratified_folds(labels, 5, [3, 0])
    held_count = np.zeros(labels.size, int)
    for fit, held in folds:
        np.testing.assert_array_equal(np.union1d(fit, held), np.arange(labels.size))
        assert np.intersect1d(fit, held).size == 0
        held_count[held] += 1
        assert set(labels[fit]) == set(labels)  # every class in every training part
        for label, size in zip(range(5), [1, 2, 7, 10, 23]):
            if size > 1:  # floor or ceil of size / 5
                assert size // 5 <= np.sum(labels[held] == label) <= -(-size // 5)
    np.testing.assert_array_equal(held_count, labels != 0)  # the one-image class never held out
    assert max(h.size for _, h in folds) - min(h.size for _, h in folds) <= 1
    again = stratified_folds(labels, 5, [3, 0])
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    assert not all(
        np.array_equal(a[1], b[1]) for a, b in zip(folds, stratified_folds(labels, 5, [3, 1]))
    )


def test_ten_random_draws_by_default_each_a_row_with_its_draw():
    settings = TransferSettings.from_params(
        {"fractions": [0.05, 1.0], "rankings": ["dks_count"], "c_selection": {"folds": 2}},
        {"bins": 20, "workers": 1},
    )
    assert settings.random_draws == 10
    results = evaluate(planted()[1], settings).results
    random = results[results["selection"] == "random"]
    for (kind, fraction), rows in random.groupby(["embedding", "fraction"]):
        assert rows["draw"].tolist() == list(range(10)), (kind, fraction)
    at_5 = random[random["fraction"] == 0.05]
    assert at_5.groupby("embedding")["n_features"].first().eq(6).all()
    assert at_5["accuracy"].nunique() > 1  # different draws, different features
    assert results.loc[results["selection"] != "random", "draw"].isna().all()


def test_anova_f_rows_are_an_independent_f_classif_ranking(evaluated):
    from sklearn.feature_selection import SelectKBest, f_classif

    values, labels, is_train, _ = planted()
    for fraction, k in ((0.05, 6), (0.1, 12)):
        selected = evaluated.fitted["selections"][("anova_f", None, fraction)]
        expected = SelectKBest(f_classif, k=k).fit(values[is_train], labels[is_train])
        np.testing.assert_array_equal(selected, np.sort(expected.get_support(indices=True)))
    results = evaluated.results
    assert set(results.loc[results["selection"] == "anova_f", "fraction"]) == set(FRACTIONS)


STRENGTH = {
    "ridge": "ridge_alpha",
    "discriminant": "shrinkage",
    "logistic_regression": "regularisation_c",
}


@pytest.mark.parametrize(
    ("classifier", "budget", "solver"),
    [
        ("auto", 7e6, "discriminant"),
        ("auto", 2e7, "logistic_regression"),
        ("ridge", 7e6, "ridge"),
        ("discriminant", 2e7, "discriminant"),
    ],
)
def test_one_solver_fits_every_row_of_an_evaluation(classifier, budget, solver):
    # 120 training images, 6 classes: the full network (120 features) costs 120^2 x 120 x 6 =
    # 1.04e7 and a layer (60) half: with a budget between them the layers used to get the
    # logistic regression and the full network the large-scale path, inside one comparison.
    # `auto` picks the large-scale path (the discriminant) where the budget is exceeded; ridge
    # is only fitted when asked for.
    settings = replace(
        SETTINGS,
        classifier=classifier,
        logistic_regression=LogisticRegressionSettings(c_grid=(0.01, 0.1, 1.0), budget=budget),
    )
    results = evaluate(planted()[1], settings).results
    assert set(results["solver"]) == {solver}
    assert results[STRENGTH[solver]].notna().all()
    for other in set(STRENGTH.values()) - {STRENGTH[solver]}:
        assert results[other].isna().all(), other


def test_a_kinds_gram_matrices_are_freed_before_the_next_ones_are_made(monkeypatch):
    # At caltech256's size each Gram matrix takes 1.2 GB: one fold's (or the training split's)
    # of one kind is held at a time, freed before the next is made.
    import gc
    import weakref

    from cnn_feature_behavior.transfer import ridge

    made = []  # weak references: RidgeData is an unhashable dataclass
    alive_when_made = []
    original_of = ridge.RidgeData.of.__func__

    def recorded_of(cls, *args, **kwargs):
        gc.collect()
        alive_when_made.append(sum(ref() is not None for ref in made))
        data = original_of(cls, *args, **kwargs)
        made.append(weakref.ref(data))
        return data

    monkeypatch.setattr(ridge.RidgeData, "of", classmethod(recorded_of))
    settings = TransferSettings.from_params(
        {
            "classifier": "ridge",
            "fractions": [0.5, 1.0],
            "rankings": ["dks_count"],
            "random_draws": 1,
        },
        {"bins": 20, "workers": 1},
        {"repetitions": 1, "seed": 3},
    )
    evaluate(planted()[1], settings)
    assert len(alive_when_made) == 2 * (3 + 1)  # two kinds, three folds and the training split
    assert set(alive_when_made) == {0}


def test_the_folds_fits_stop_by_closeness_to_their_optimum(monkeypatch):
    # Not at a looser absolute tolerance: on the real Caltech-101 conv1_2 (64 features) fits
    # stopped at |gradient| <= 1e-4 chose C = 1,000 where converged fits chose 100, 0.013 lower
    # on the test images; the relative stop tightens with C.
    from cnn_feature_behavior.transfer import classifier

    stops = []
    original_fit = MultinomialLogisticRegression.fit

    def recording_fit(self, *args, **kwargs):
        stops.append((self.tol, self.relative_tol))
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(MultinomialLogisticRegression, "fit", recording_fit)
    values, labels, *_ = planted()
    data = probe_data(values, labels, values, stratified_folds(labels, 3, 0))
    settings = TransferSettings.from_params(
        {
            "classifier": "logistic_regression",
            "logistic_regression": {
                "tol": 1e-6,
                "selection_relative_tol": 0.03,
                "relative_tol": 0.002,
            },
        }
    )
    classifier.fit_probe(data, "logistic_regression", settings)
    assert stops[:-1] and set(stops[:-1]) == {(1e-6, 0.03)}  # the folds' fits
    assert stops[-1] == (1e-6, 0.002)  # the refit


def test_the_refit_starts_from_the_folds_mean_weights_feature_by_feature(monkeypatch):
    # A ranking's selection differs between the folds and the training split: the refit's
    # start once took a fit part's weights position by position, each on another feature.
    from cnn_feature_behavior.transfer import classifier
    from cnn_feature_behavior.transfer.classifier import FoldData

    values, labels, *_ = planted()
    (fit_a, held_a), (fit_b, held_b) = stratified_folds(labels, 2, 0)
    columns_a, columns_b = np.array([0, 10, 20, 30]), np.array([10, 20, 40, 60])
    train_columns = np.array([10, 20, 30, 40, 50])
    folds = (
        FoldData(values[fit_a][:, columns_a], labels[fit_a], values[held_a][:, columns_a],
                 labels[held_a], common_columns=(np.array([1, 2, 3]), np.array([0, 1, 2]))),
        FoldData(values[fit_b][:, columns_b], labels[fit_b], values[held_b][:, columns_b],
                 labels[held_b], common_columns=(np.array([0, 1, 2]), np.array([0, 1, 3]))),
    )  # fmt: skip
    data = ProbeData(folds, values[:, train_columns], labels, values[:, train_columns])
    starts, made = [], []
    original_start_from, original_weights = classifier._Probe.start_from, classifier._Probe.weights

    def start_from(self, weights, intercept):
        starts.append((weights.copy(), [w for w, _ in made[-2:]]))  # the folds' at the chosen C
        original_start_from(self, weights, intercept)

    def weights(self):
        made.append(original_weights(self))
        return made[-1]

    monkeypatch.setattr(classifier._Probe, "start_from", start_from)
    monkeypatch.setattr(classifier._Probe, "weights", weights)
    settings = TransferSettings(classifier="logistic_regression")
    classifier.fit_probe(data, "logistic_regression", settings)
    ((start, (weights_a, weights_b)),) = starts
    expected = np.zeros((5, N_CLASSES))
    expected[[0, 1, 2]] += weights_a[[1, 2, 3]] / 2
    expected[[0, 1, 3]] += weights_b[[0, 1, 2]] / 2
    np.testing.assert_allclose(start, expected)


def test_each_curve_searches_c_from_its_previous_sizes_choice(monkeypatch):
    from cnn_feature_behavior.transfer import scheduling

    calls = []
    original = scheduling.fit_probe

    starts = []

    def recording(data, solver, settings, start_c=None):
        fitted = original(data, solver, settings, start_c)
        calls.append((data.train_values.shape[1], start_c, fitted.regularisation_c))
        starts.append([None if fold.start is None else fold.start[0].shape for fold in data.folds])
        return fitted

    monkeypatch.setattr(scheduling, "fit_probe", recording)
    settings = TransferSettings.from_params(
        {
            "fractions": [0.05, 0.1, 0.25, 1.0],
            "rankings": ["dks_count"],
            "random_draws": 1,
            "workers": 1,
        },
        {"bins": 20, "workers": 1},
        {"repetitions": 1, "seed": 3},
    )
    evaluate(planted()[1], settings)
    # workers 1: the tasks in their order, the most columns first: the full network (120), the
    # layers (60 each), each curve's sizes together (6 + 12 + 30: dks_count, anova_f, then the
    # random draw); then the FNE's.
    calls = calls[:12]
    assert [columns for columns, *_ in calls] == [120, 60, 60] + [6, 12, 30] * 3
    assert [start for _, start, _ in calls[:3]] == [None, None, None]
    for curve in (calls[3:6], calls[6:9], calls[9:12]):
        assert [start for _, start, _ in curve] == [None, curve[0][2], curve[1][2]]
    # ... and each fold's first fit from the same fold's weights at the previous size, moved to
    # this size's columns.
    folds = settings.c_selection.folds
    assert starts[3] == [None] * folds
    assert starts[4] == [(12, N_CLASSES)] * folds and starts[5] == [(30, N_CLASSES)] * folds


def test_results_do_not_depend_on_the_number_of_workers():
    one, two = (evaluate(planted()[1], replace(SETTINGS, workers=workers)) for workers in (1, 2))
    pd.testing.assert_frame_equal(one.results, two.results)


def test_no_convergence_warning_escapes_the_threads_that_fit():
    # Each fit silenced ConvergenceWarning in its own catch_warnings, which is not thread-safe:
    # one thread leaving it restored the filters while another was still fitting.
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    settings = replace(
        SETTINGS,
        workers=2,
        logistic_regression=LogisticRegressionSettings(c_grid=(0.01, 0.1, 1.0), max_iter=2),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            evaluate(planted()[1], settings)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_a_refit_whose_line_search_fails_says_so_in_its_row(monkeypatch):
    from cnn_feature_behavior.transfer import multinomial

    original = multinomial._line_search
    failing = {"on": False}

    def line_search(*args):
        return None if failing["on"] else original(*args)

    def refit_fails(choice, data, settings, estimator):
        failing["on"] = True
        try:
            return original_refit(choice, data, settings, estimator)
        finally:
            failing["on"] = False

    from cnn_feature_behavior.transfer import classifier

    original_refit = classifier._refit_logistic
    monkeypatch.setattr(multinomial, "_line_search", line_search)
    monkeypatch.setattr(classifier, "_refit_logistic", refit_fails)
    settings = replace(SETTINGS, workers=1)
    results = evaluate(planted()[1], settings).results
    assert set(results["solver"]) == {"logistic_regression"}
    assert not results["converged"].any()
    monkeypatch.undo()
    assert evaluate(planted()[1], settings).results["converged"].all()


def test_no_discriminant_fold_sees_its_held_out_rows(monkeypatch):
    # The discriminant's folds: each system is its fold's training part's alone (its square
    # roots' standardisation, its rankings, its Gram matrix), its held-out images scored apart;
    # changing a fold's held-out images changes nothing that fold fits.
    from cnn_feature_behavior.transfer import scheduling

    values, labels, is_train, layers = planted()
    names = [f"class{k}" for k in range(N_CLASSES)]
    settings = replace(SETTINGS, classifier="discriminant")
    original, original_system = scheduling.score_fold, scheduling.closed_form_system

    def run(matrix):
        # Per thread: the systems of small jobs are scored several at once.
        seen, part = [], threading.local()

        def system_of(solver, job, of_part, values, *args, **kwargs):
            # which fold (or the training split), row and values
            part.held, part.job = tuple(of_part.scored_rows), (job.key(), values)
            return original_system(solver, job, of_part, values, *args, **kwargs)

        def recording(solver, fold, grid):
            system = fold.system
            seen.append(
                (part.held, system.data.n_images, fold.held_values.shape[0], repr(part.job),
                 system.means.copy(), system.covariance(0.5))
            )  # fmt: skip
            return original(solver, fold, grid)

        monkeypatch.setattr(scheduling, "closed_form_system", system_of)
        monkeypatch.setattr(scheduling, "score_fold", recording)
        evaluation = evaluate_split(matrix, labels, is_train, layers, names, settings)
        return evaluation, sorted(seen, key=lambda call: (call[0], call[3]))

    first, seen = run(values)
    folds = first.fitted["folds"]
    sizes = {(fit.size, held.size) for fit, held in folds}
    assert {(n_images, held) for _, n_images, held, *_ in seen} == sizes
    fit, held = folds[0]
    train_rows = np.flatnonzero(is_train)
    first_fold, next_fold = (tuple(train_rows[held]) for _, held in folds[:2])
    changed = values.copy()
    changed[train_rows[held]] = (
        np.random.default_rng(4).standard_normal((held.size, values.shape[1])) * 4 + 1
    )
    second, seen_again = run(changed)
    assert [call[:4] for call in seen_again] == [call[:4] for call in seen]
    compared = 0
    for (fold, *_, means, covariance), (*_, again, covariance_again) in zip(seen, seen_again):
        if fold == first_fold:
            np.testing.assert_array_equal(again, means)
            np.testing.assert_array_equal(covariance_again, covariance)
            compared += 1
    assert compared >= 10
    # ... while the next fold, whose training part holds those images, sees them.
    assert any(
        not np.array_equal(a[4], b[4]) for a, b in zip(seen, seen_again) if a[0] == next_fold
    )


def test_the_discriminant_sees_square_roots_and_its_folds_choose_the_raw_pair_on_narrow_rows():
    settings = replace(SETTINGS, classifier="discriminant")
    evaluation = evaluate(planted()[1], settings)
    timings = evaluation.timings
    continuous = timings["embedding"] != "fne"
    narrow = timings["n_features"] <= settings.discriminant.root_raw_max_features
    assert set(timings.loc[~continuous, "representation"]) == {"raw"}
    assert set(timings.loc[continuous, "representation"]) <= {"root", "root+raw"}
    # Without the pair, every continuous row sees the square roots alone.
    alone = replace(
        settings,
        discriminant=replace(settings.discriminant, root_raw_max_features=0),
    )
    timings_alone = evaluate(planted()[1], alone).timings
    assert set(timings_alone.loc[continuous, "representation"]) == {"root"}
    assert narrow.any()
    # The layers beat chance by far: the discriminant does not collapse.
    results = evaluation.results
    assert results.loc[results["layer"] == "conv1_1", "accuracy"].item() > 0.6  # chance: 1/6


def test_the_discriminants_choice_is_accuracy_first_then_log_loss_then_the_smaller_shrinkage():
    from cnn_feature_behavior.transfer.classifier import (
        FitResult,
        FoldScores,
        better_choice,
        choose_from_scores,
    )

    labels = np.array([0, 1, 0, 1])
    right, wrong = np.array([0, 1]), np.array([1, 1])
    grid = (0.001, 0.1, 1.0)
    folds = [
        FoldScores(np.array([0.5, 0.9, 0.4]), (right, right, wrong)),
        FoldScores(np.array([0.5, 0.3, 0.4]), (right, right, right)),
    ]
    choice = choose_from_scores("discriminant", grid, folds, labels)
    # 0.001 and 0.1 are right on every held-out image, 0.001 with the lower mean log-loss (0.5
    # against 0.6); 1.0 has the lowest loss (0.4) but one error.
    assert choice.shrinkage == 0.001 and np.isnan(choice.regularisation_c)
    assert choice.cv_accuracy == 1.0 and choice.c_at_grid_edge
    tied = [FoldScores(np.array([0.5, 0.5]), (right, right))] * 2
    assert choose_from_scores("discriminant", (0.01, 0.1), tied, labels).shrinkage == 0.01
    first = FitResult(np.nan, np.empty(0), cv_accuracy=0.9, cv_loss=1.0, representation="root")
    second = replace(first, representation="root+raw")
    assert better_choice([first, second]).representation == "root"
    assert better_choice([first, replace(second, cv_loss=0.9)]).representation == "root+raw"
    assert better_choice([replace(first, cv_accuracy=0.8), second]).representation == "root+raw"


def test_bad_discriminant_settings_are_named():
    with pytest.raises(ValueError, match="transfer.discriminant.shrinkage_grid"):
        TransferSettings.from_params({"discriminant": {"shrinkage_grid": [0.0, 0.5]}})
    with pytest.raises(ValueError, match=r"transfer.discriminant: unknown key\(s\)"):
        TransferSettings.from_params({"discriminant": {"shrinkage": [0.5]}})
    with pytest.raises(ValueError, match="root_raw_max_features"):
        TransferSettings.from_params({"discriminant": {"root_raw_max_features": -1}})


def test_bad_logistic_regression_tolerances_are_named():
    for key, value in (("tol", 0.0), ("relative_tol", -0.01), ("selection_relative_tol", 1.5)):
        with pytest.raises(ValueError, match=f"transfer.logistic_regression.{key}"):
            TransferSettings.from_params({"logistic_regression": {key: value}})


def test_folds_score_each_c_near_its_converged_held_out_loss():
    # Stopped at an absolute gradient tolerance (1e-4), a wide design's fold fits at large C
    # stayed near where the previous C's fit left them (their held-out loss here 0.005 off the
    # converged one, 0.14 off on a larger design), so that C was ranked by the search's path:
    # on the flowers102-sized benchmark whole curve points tied at every C, and 3 folds instead
    # of 5 moved one row's test mean per-class accuracy by 0.068.
    rng = np.random.default_rng(5)
    n_classes, n_features = 10, 1100  # over 1,024 columns, the fits' old cut-off
    centres = rng.standard_normal((n_classes, n_features)) * 0.15
    labels = np.repeat(np.arange(n_classes), 90)
    train = (centres[labels] + rng.standard_normal((labels.size, n_features))).astype(np.float32)
    folds = stratified_folds(labels, 3, 0)
    data = probe_data(train, labels, train[:20], folds)
    settings = TransferSettings.from_params(
        {
            "classifier": "logistic_regression",
            "c_selection": {"widen": 0},
            "logistic_regression": {"c_grid": [0.1, 1.0, 10.0, 100.0]},
        }
    )
    converged = {}

    def converged_loss(c: float) -> float:
        if c not in converged:
            losses = []
            for fit, held in folds:
                model = LogisticRegression(C=c, tol=1e-7, max_iter=10_000)
                model.fit(train[fit].astype(np.float64), labels[fit])
                probabilities = model.predict_proba(train[held].astype(np.float64))
                losses.append(log_loss(labels[held], probabilities, labels=model.classes_))
            converged[c] = float(np.mean(losses))
        return converged[c]

    for start_c in (0.1, 100.0):
        chosen = fit_probe(data, "logistic_regression", settings, start_c)
        for c, loss in chosen.cv_losses.items():
            assert loss == pytest.approx(converged_loss(c), abs=0.003), (start_c, c)


def test_walked_rows_score_fewer_shrinkage_values_and_no_fold_sees_its_held_out_rows(monkeypatch):
    # Rows of walk_min_features features or more walk the shrinkage grid on every fold's kept
    # (float32) statistics: fewer fits than the whole grid, and each fold's system is its
    # training part's alone (changing the first fold's held-out images changes nothing it fits).
    from cnn_feature_behavior.transfer import classifier, scheduling

    values, labels, is_train, layers = planted()
    names = [f"class{k}" for k in range(N_CLASSES)]
    discriminant = replace(SETTINGS.discriminant, walk_min_features=30, root_raw_max_features=0)
    settings = replace(SETTINGS, classifier="discriminant", discriminant=discriminant)
    original = scheduling.walk_shrinkage

    def run(matrix):
        walks, fits, walked_fits = [], [], []

        def recording(folds, grid, start=None):
            walks.append([(system.data.n_images, len(held), system.means.copy(),
                           system.covariance(0.5)) for system, held, _ in folds])  # fmt: skip
            before = len(fits)
            choice = original(folds, grid, start)
            walked_fits.append(len(fits) - before)
            return choice

        def counting(*args):
            fits.append(args[3])
            return score_discriminant(*args)

        monkeypatch.setattr(scheduling, "walk_shrinkage", recording)
        monkeypatch.setattr(classifier, "score_discriminant", counting)
        evaluation = evaluate_split(matrix, labels, is_train, layers, names, settings)
        return evaluation, walks, walked_fits

    score_discriminant = classifier.score_discriminant
    first, walks, walked_fits = run(values)
    wide = first.timings["n_features"] >= 30
    # Distinct feature sets walk once (the full network is every ranking's 100% point).
    assert wide.any() and 0 < len(walks) <= wide.sum()
    grid = settings.discriminant.shrinkage_grid
    n_folds = len(first.fitted["folds"])
    assert all(fits % n_folds == 0 and fits < n_folds * len(grid) for fits in walked_fits)
    assert set(first.results["shrinkage"]) <= set(grid)
    fold_sizes = [(fit.size, held.size) for fit, held in first.fitted["folds"]]
    for walk in walks:
        assert [(n_images, held) for n_images, held, *_ in walk] == fold_sizes
    train_rows = np.flatnonzero(is_train)
    held = first.fitted["folds"][0][1]
    changed = values.copy()
    changed[train_rows[held]] = (
        np.random.default_rng(4).standard_normal((held.size, values.shape[1])) * 4 + 1
    )
    _, walks_again, _ = run(changed)
    assert len(walks_again) == len(walks)
    for walk, again in zip(walks, walks_again):
        np.testing.assert_array_equal(again[0][2], walk[0][2])
        np.testing.assert_array_equal(again[0][3], walk[0][3])
    assert any(not np.array_equal(a[1][2], b[1][2]) for a, b in zip(walks, walks_again))


def test_walk_min_features_is_checked():
    with pytest.raises(ValueError, match="transfer.discriminant.walk_min_features"):
        TransferSettings.from_params({"discriminant": {"walk_min_features": 0}})


def test_a_walk_starts_from_its_curves_previous_size_else_its_kinds_widest_row():
    from cnn_feature_behavior.transfer.classifier import FitResult
    from cnn_feature_behavior.transfer.jobs import Job
    from cnn_feature_behavior.transfer.scheduling import _walk_start

    def job(selection, draw, size, kind="full_network", layer=None):
        row = {"embedding": kind, "layer": layer, "selection": selection, "draw": draw}
        columns = np.arange(size) if layer else None
        return Job(row, kind, 100, columns, None if layer else size)

    narrow, middle = job("random", 1, 10), job("random", 1, 50)
    other_draw, layer = job("random", 2, 60), job(None, None, 80, layer="conv5_1")
    fne = job("dks_cover", None, 90, kind="fne")
    jobs = {j.key(): j for j in (narrow, middle, other_draw, layer, fne)}
    made = dict(zip(jobs, (1e-4, 1e-2, 0.4, 0.7, 1.0)))
    choices = {key: FitResult(np.nan, np.empty(0), shrinkage=value) for key, value in made.items()}
    wider, whole = job("random", 1, 75), job(None, None, 100)
    assert _walk_start(wider, jobs, choices) == 1e-2  # the same draw's 50 features
    assert _walk_start(wider, jobs, {}) is None
    # The full network is on no curve: its kind's widest chosen row (the layer, 80 features).
    assert _walk_start(whole, jobs, choices) == 0.7
    assert _walk_start(job("dks_cover", None, 100, kind="fne"), jobs, choices) == 1.0


def test_repeated_folds_are_new_draws_after_the_unrepeated_ones():
    from cnn_feature_behavior.transfer.evaluation import training_folds

    labels = np.repeat(np.arange(4), 9)
    once = training_folds(labels, SETTINGS, repetition=0)
    repeated = replace(SETTINGS, c_selection=replace(SETTINGS.c_selection, repeats=3))
    thrice = training_folds(labels, repeated, repetition=0)
    n_folds = SETTINGS.c_selection.folds
    assert len(thrice) == 3 * n_folds
    for (_, held), (_, held_again) in zip(once, thrice[:n_folds]):
        np.testing.assert_array_equal(held, held_again)  # the first draw is the unrepeated one
    for repeat in range(3):  # each draw holds every image out once
        held = np.concatenate([h for _, h in thrice[repeat * n_folds : (repeat + 1) * n_folds]])
        np.testing.assert_array_equal(np.sort(held), np.arange(labels.size))
    assert not np.array_equal(thrice[0][1], thrice[n_folds][1])
    with pytest.raises(ValueError, match="transfer.c_selection.repeats"):
        TransferSettings.from_params({"c_selection": {"repeats": 0}})


@pytest.mark.parametrize("classifier", ["logistic_regression", "discriminant"])
def test_an_evaluation_on_repeated_folds_fits_every_row(classifier):
    repeated = replace(SETTINGS, c_selection=replace(SETTINGS.c_selection, repeats=2),
                       classifier=classifier)  # fmt: skip
    evaluation = evaluate(planted()[1], repeated)
    assert len(evaluation.fitted["folds"]) == 2 * SETTINGS.c_selection.folds
    once = evaluate(planted()[1], replace(SETTINGS, classifier=classifier))
    assert len(evaluation.results) == len(once.results)
    assert evaluation.results["accuracy"].notna().all()
