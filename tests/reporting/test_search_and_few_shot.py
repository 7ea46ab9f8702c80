"""The retrieval and few-shot report parts: tables, sentences and figures from small tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cnn_feature_behavior.reporting import search_and_few_shot as parts
from cnn_feature_behavior.reporting.figures.few_shot import (
    few_shot_across_datasets_figure,
    few_shot_figure,
)

EMBEDDINGS = [("layer", "conv4_3"), ("layer", "conv5_3"), ("full_network", None), ("fne", None)]


def retrieval_scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": "toy",
            "source_model": "vgg16_imagenet",
            "embedding": [e for e, _ in EMBEDDINGS],
            "layer": [layer for _, layer in EMBEDDINGS],
            "n_features": [512, 512, 1024, 1024],
            "k": 10,
            "map_at_k": [0.62, 0.55, 0.60, 0.40],
            "ci_low": [0.60, 0.53, 0.58, 0.38],
            "ci_high": [0.64, 0.57, 0.62, 0.42],
            "tied_with_best": [True, False, True, False],
        }
    )


def transfer_results() -> pd.DataFrame:
    """conv5_3 classifies the test images best, conv4_3 scores best in cross-validation."""
    rows = []
    cv_scores = [0.83, 0.81, 0.84, 0.82]
    for repetition in range(2):
        for (embedding, layer), accuracy, cv in zip(
            EMBEDDINGS, [0.80, 0.85, 0.88, 0.86], cv_scores
        ):
            rows.append(
                {
                    "dataset": "toy", "source_model": "vgg16_imagenet", "embedding": embedding,
                    "layer": layer, "selection": None, "fraction": np.nan,
                    "n_features": 512, "split_source": "seeded", "repetition": repetition,
                    "classifier": "ridge", "solver": "ridge", "regularisation_c": 1.0,
                    "c_at_grid_edge": False, "n_train": 10, "n_test": 10,
                    "accuracy": accuracy + 0.01 * repetition, "mean_per_class_accuracy": accuracy,
                    "cv_mean_per_class_accuracy": cv, "cv_loss": 1.0 - cv,
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def few_shot_results(dataset: str = "toy") -> pd.DataFrame:
    rows = []
    for method in ("nearest_class_mean", "logistic_regression"):
        for k in (1, 5):
            for i, (embedding, layer) in enumerate(EMBEDDINGS):
                mean = 0.3 + 0.1 * k / 5 + 0.05 * i
                rows.append(
                    {
                        "dataset": dataset, "source_model": "vgg16_imagenet",
                        "embedding": embedding, "layer": layer, "k": k, "method": method,
                        "episodes": 20, "mean": mean, "ci_low": mean - 0.02,
                        "ci_high": mean + 0.02, "tied_with_best": i >= 2,
                    }
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_search_table_puts_transfer_accuracy_beside_the_retrieval_score():
    table = parts.search_table(retrieval_scores(), transfer_results())
    assert table["embedding"].tolist() == ["conv4_3", "conv5_3", "full network", "FNE"]
    np.testing.assert_allclose(table["transfer_mean_per_class_accuracy"], [0.80, 0.85, 0.88, 0.86])
    np.testing.assert_allclose(table["transfer_accuracy"], [0.805, 0.855, 0.885, 0.865])
    assert table["map_at_10"].tolist() == [0.62, 0.55, 0.60, 0.40]
    assert table["tied_with_best_map"].tolist() == [True, False, True, False]


def test_search_verdict_names_the_best_for_search_its_ties_and_the_best_classifier():
    text = parts.search_verdict(retrieval_scores(), transfer_results())
    assert text.startswith("For search, conv4_3 retrieves best: mAP@10 0.620 [0.600, 0.640]")
    assert "tied with it" in text and "full network" in text
    # The Transfer section's best layer, chosen by its cross-validated score: not conv5_3, the
    # best on the test images.
    assert "the best single layer by cross-validated score is conv4_3 (0.800" in text


def test_few_shot_table_has_one_column_per_method_and_k_and_marks_ties():
    table = parts.few_shot_table(few_shot_results())
    assert list(table.columns) == [
        "embedding",
        "nearest class mean, 1-shot",
        "nearest class mean, 5-shot",
        "logistic regression, 1-shot",
        "logistic regression, 5-shot",
    ]
    assert table.loc[3, "nearest class mean, 1-shot"] == "0.470 [0.450, 0.490] *"
    assert not table.loc[0, "logistic regression, 5-shot"].endswith("*")


def test_few_shot_verdict_names_the_best_per_method_and_k():
    text = parts.few_shot_verdict(few_shot_results())
    assert "Nearest class mean: 1-shot FNE 0.470 [0.450, 0.490] (1 tied)" in text
    assert "20 episodes" in text


def test_across_table_has_one_row_per_dataset():
    table = parts.across_table(
        [retrieval_scores()], [few_shot_results(), few_shot_results("other")]
    )
    assert table["dataset"].tolist() == ["other", "toy"]
    toy = table.set_index("dataset").loc["toy"]
    assert toy["best_for_search"] == "conv4_3" and toy["map_at_10"] == 0.62
    assert toy["ncm_5shot_best"] == "FNE"
    assert pd.isna(table.set_index("dataset").loc["other", "map_at_10"])


def test_figures_draw_one_line_per_embedding():
    figure = few_shot_figure(few_shot_results(), dataset="toy", source_model="vgg16_imagenet")
    assert len(figure.axes) == 2
    assert len(figure.axes[0].lines) >= len(EMBEDDINGS)
    across = few_shot_across_datasets_figure(
        [few_shot_results(), few_shot_results("other")],
        method="logistic_regression",
        source_model="vgg16_imagenet",
    )
    assert [a.get_title() for a in across.axes[:2]] == ["toy", "other"]
