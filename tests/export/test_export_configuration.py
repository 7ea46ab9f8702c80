"""The study's choice of configuration, its rows of transfer_results and its label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cnn_feature_behavior.export.configuration import (
    configuration_label,
    configuration_rows,
    study_choice,
)
from cnn_feature_behavior.transfer.named_embeddings import Configuration


def _results(rows: list[tuple], repetitions: int = 2) -> pd.DataFrame:
    """transfer_results rows: (embedding, layer, selection, fraction, n_features, cross-validated
    mean per-class accuracy); the test accuracy is 1 - that, so that a choice by test accuracy
    would be the opposite one."""
    records = []
    for repetition in range(repetitions):
        for embedding, layer, selection, fraction, n_features, cv in rows:
            records.append(
                {
                    "dataset": "d",
                    "source_model": "m",
                    "embedding": embedding,
                    "layer": layer,
                    "selection": selection,
                    "fraction": np.nan if fraction is None else fraction,
                    "n_features": n_features,
                    "split_source": "seeded",
                    "repetition": repetition,
                    "classifier": "logistic_regression",
                    "solver": "logistic_regression",
                    "regularisation_c": 1.0,
                    "c_at_grid_edge": False,
                    "n_train": 10,
                    "n_test": 10,
                    "accuracy": 1.0 - cv,
                    "mean_per_class_accuracy": 1.0 - cv,
                    # the repetitions differ, their mean is `cv`
                    "cv_mean_per_class_accuracy": cv + (0.01 if repetition else -0.01),
                    "cv_loss": 0.5,
                }
            )
    return pd.DataFrame(records)


ROWS = [
    ("layer", "conv4_3", None, None, 512, 0.80),
    ("layer", "conv5_1", None, None, 512, 0.86),
    ("full_network", None, None, None, 4224, 0.84),
    ("fne", None, None, None, 4224, 0.85),
    ("full_network", None, "dks_count", 0.1, 422, 0.83),
    ("fne", None, "dks_cover", 0.05, 211, 0.87),
    ("full_network", None, "random", 0.1, 422, 0.90),  # a baseline: never the verdict's pick
    ("full_network", None, "dks_count", 1.0, 4224, 0.95),  # every feature: no selection
]


def test_the_study_choice_is_the_verdicts_best_by_cross_validated_score():
    configuration, reason = study_choice(_results(ROWS))
    assert configuration == Configuration("fne", None, "dks_cover", 0.05)
    assert "2 repetition(s)" in reason and "cross-validated" in reason


def test_ties_go_to_the_lower_loss_then_to_fewer_features():
    rows = [row for row in ROWS if row[2] is None]
    rows = [(*row[:5], 0.86) if row[0] != "layer" else row for row in rows]
    assert study_choice(_results(rows))[0] == Configuration("layer", layer="conv5_1")
    results = _results(rows)
    results.loc[results["embedding"] == "fne", "cv_loss"] = 0.4
    assert study_choice(results)[0] == Configuration("fne")


def test_results_without_cross_validated_scores_are_an_error():
    results = _results(ROWS).drop(columns=["cv_mean_per_class_accuracy", "cv_loss"])
    with pytest.raises(ValueError, match="no cross-validated score.*export.embedding"):
        study_choice(results)


def test_rows_of_a_configuration():
    results = _results(ROWS)
    for spelling, n_rows in [
        ("layer:conv5_1", 2),
        ("selection:dks_count:0.1", 2),
        ("selection:dks_count:0.1:fne", 0),
        ("fne", 2),
    ]:
        configuration = Configuration.parse(spelling, "export.embedding")
        assert len(configuration_rows(configuration, results)) == n_rows, spelling


def test_labels_say_the_configuration_in_words():
    assert configuration_label(Configuration("layer", layer="conv5_1")) == "layer conv5_1"
    random = configuration_label(Configuration("fne", None, "random", 0.05))
    assert random.startswith("FNE") and random.endswith("a random 5%")
    assert configuration_label(Configuration("full_network", None, "dks_count", 0.1)).endswith(
        "top 10%"
    )
