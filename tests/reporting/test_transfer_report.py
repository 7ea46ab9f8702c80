"""Transfer in the reports: the summary over repetitions against a direct computation, the
verdict sentence on a hand-made table, the cross-model table, and the transfer figures drawn
from synthetic tables (missing layers, one repetition, 100 classes on the map)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders.report_synthetic import (
    synthetic_embedding_maps,
    synthetic_transfer_comparisons,
    synthetic_transfer_results,
)
from matplotlib.figure import Figure

from cnn_feature_behavior.pipelines.reporting.nodes import (
    cross_model_transfer_table,
    plot_embedding_maps,
    transfer_tables,
)
from cnn_feature_behavior.pipelines.reporting.parts import part_named, shown_table
from cnn_feature_behavior.reporting import figures
from cnn_feature_behavior.reporting import transfer_summary as ts
from cnn_feature_behavior.reporting.report import markdown_table


def rendered(figure: Figure) -> np.ndarray:
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3]
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    return pixels


def text_of(figure: Figure) -> str:
    texts = figure.findobj(lambda artist: hasattr(artist, "get_text"))
    return " ".join(text.get_text() for text in texts)


def row(configuration, repetition, mpca, cv, c=1.0, draw=None):
    """configuration: (embedding, layer, selection, fraction, n_features)."""
    embedding, layer, selection, fraction, n_features = configuration
    return {
        "dataset": "wood",
        "source_model": "vgg16_imagenet",
        "embedding": embedding,
        "layer": layer,
        "selection": selection,
        "fraction": fraction,
        "draw": draw,
        "n_features": n_features,
        "split_source": "seeded",
        "repetition": repetition,
        "classifier": "auto",
        "solver": "logistic_regression",
        "regularisation_c": c,
        "ridge_alpha": np.nan,
        "c_at_grid_edge": False,
        "converged": True,
        "cv_loss": 1.0 - cv,
        "cv_accuracy": cv,
        "cv_mean_per_class_accuracy": cv,
        "n_train": 100,
        "n_test": 200,
        "accuracy": mpca + 0.1,
        "mean_per_class_accuracy": mpca,
    }


@pytest.fixture
def hand_made() -> pd.DataFrame:
    """Two repetitions: conv5_3 beats conv4_3 on the test images, but conv4_3 has the better
    cross-validated score (the one that chooses); the FNE's top 10% by DKS has the best
    cross-validated score of the selections; fraction 1 rows are no selection."""
    rows = []
    for repetition, (a, b) in enumerate([(0.62, 0.60), (0.58, 0.66)]):
        rows += [
            row(("layer", "conv4_3", None, None, 512), repetition, a, 0.61, c=0.1),
            row(
                ("layer", "conv5_3", None, None, 512), repetition, b, 0.59, c=0.1 + 0.9 * repetition
            ),
            row(("full_network", None, None, None, 4224), repetition, 0.70, 0.69),
            row(("fne", None, None, None, 4224), repetition, 0.72, 0.70),
            row(("fne", None, "dks_count", 0.1, 422), repetition, 0.74, 0.72),
            row(("fne", None, "anova_f", 0.1, 422), repetition, 0.70, 0.68),
            row(
                ("fne", None, "random", 0.1, 422), repetition, 0.50 + 0.1 * repetition, 0.5, draw=0
            ),
            row(("fne", None, "random", 0.1, 422), repetition, 0.52, 0.5, draw=1),
            row(("fne", None, "dks_count", 1.0, 4224), repetition, 0.80, 0.79),
            row(("full_network", None, "dks_mean_abs", 0.1, 422), repetition, 0.73, 0.71),
        ]
    table = pd.DataFrame(rows)
    table["draw"] = table["draw"].astype("Int64")
    return table


def comparison(configuration, baseline, difference, low, high, verdict=None):
    """configuration: (embedding, layer, ranking, fraction)."""
    embedding, layer, ranking, fraction = configuration
    return {
        "dataset": "wood", "source_model": "vgg16_imagenet", "embedding": embedding,
        "layer": layer, "ranking": ranking, "fraction": fraction, "baseline": baseline,
        "difference": difference, "ci_low": low, "ci_high": high, "verdict": verdict,
    }  # fmt: skip


@pytest.fixture
def compared() -> pd.DataFrame:
    """Hand-made comparisons of hand_made: conv5_3 tied with conv4_3, the DKS-ranked FNE 10%
    better than random and tied with ANOVA-F, the full network's mean |DKS| 10% tied with it."""
    tied, better = "no detectable difference", "better"
    mean_abs = ("full_network", None, "dks_mean_abs", 0.1)
    return pd.DataFrame(
        [
            comparison(("layer", "conv4_3", None, np.nan), "none", 0.60, 0.55, 0.65),
            comparison(("layer", "conv5_3", None, np.nan), "none", 0.63, 0.58, 0.68),
            comparison(("full_network", None, None, np.nan), "none", 0.70, 0.66, 0.74),
            comparison(("fne", None, None, np.nan), "none", 0.72, 0.68, 0.76),
            comparison(("fne", None, "dks_count", 0.1), "none", 0.74, 0.70, 0.78),
            comparison(("layer", "conv5_3", None, np.nan), "best_layer", 0.03, -0.02, 0.08, tied),
            comparison(("fne", None, "dks_count", 0.1), "random", 0.215, 0.15, 0.28, better),
            comparison(("fne", None, "dks_count", 0.1), "anova_f", 0.04, -0.01, 0.09, tied),
            comparison(mean_abs, "best_selection", -0.01, -0.05, 0.03, tied),
        ]
    )


def test_summary_matches_a_direct_computation(hand_made, compared):
    summary = ts.summarise(hand_made, compared)
    layers = summary[summary["embedding"] == "layer"]
    assert layers["layer"].tolist() == ["conv4_3", "conv5_3"]
    conv5 = layers.iloc[1]
    assert conv5["mean_per_class_accuracy"] == pytest.approx(np.mean([0.60, 0.66]))
    assert conv5["mean_per_class_accuracy_std"] == pytest.approx(np.std([0.60, 0.66], ddof=1))
    assert conv5["accuracy"] == pytest.approx(np.mean([0.70, 0.76]))
    assert (conv5["ci_low"], conv5["ci_high"]) == (0.58, 0.68)
    assert conv5["regularisation_c"] == "0.1, 1" and conv5["repetitions"] == 2
    random = summary[summary["selection"] == "random"].iloc[0]
    assert random["mean_per_class_accuracy"] == pytest.approx(np.mean([0.50, 0.52, 0.60, 0.52]))
    assert random["draws"] == 2 and np.isnan(random["ci_low"])  # no interval given for it
    # Layers, then the whole embeddings, then the selections.
    assert summary["embedding"].tolist()[:4] == ["layer", "layer", "full_network", "fne"]
    assert len(summary) == 9


def test_verdict_sentence_on_a_hand_made_table(hand_made, compared):
    assert ts.transfer_verdict(hand_made, compared) == (
        "On wood with vgg16_imagenet (seeded split, means over 2 repetitions; classifier: "
        "multinomial logistic regression (L2; scikit-learn's C), C chosen by cross-validation "
        "on the training images; mean per-class accuracy on the test images with its 95% "
        "interval, accuracy beside it): the best single layer by cross-validated score is "
        "conv4_3, 0.600 [0.550, 0.650] (accuracy 0.700); tied with it (no detectable "
        "difference): conv5_3. The best selection by cross-validated score is the FNE, "
        "DKS-ranked (classes past t+ / t-), top 10% (422 features), 0.740 [0.700, 0.780] "
        "(accuracy 0.840); tied with it: full network, DKS-ranked (mean |DKS|), top 10% (422 "
        "features). FNE, DKS-ranked (classes past t+ / t-) against random (the mean of 2 "
        "draws): better at 10%; against ANOVA-F: no detectable difference at 10%. With every "
        "feature: full network 0.700 [0.660, 0.740] (accuracy 0.800), FNE 0.720 [0.680, "
        "0.760] (accuracy 0.820)."
    )


def test_the_named_rows_do_not_move_with_the_test_figures(hand_made, compared):
    swapped = hand_made.copy()
    layers = swapped["embedding"] == "layer"
    swapped.loc[layers, "mean_per_class_accuracy"] = (
        1 - swapped.loc[layers, "mean_per_class_accuracy"]
    )
    sentence = ts.transfer_verdict(swapped, compared)
    assert "best single layer by cross-validated score is conv4_3" in sentence


def test_verdict_without_cross_validated_scores_names_no_row():
    table = synthetic_transfer_results("wood", repetitions=1, layers=["conv5_3"])
    table = table.drop(columns=["cv_mean_per_class_accuracy", "cv_loss", "cv_accuracy"])
    sentence = ts.transfer_verdict(table)
    assert sentence.startswith("On wood with vgg16_imagenet (official split; classifier: ")
    assert "no best layer or selection is named" in sentence


def test_results_are_checked_with_the_problem_named(hand_made, compared):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['accuracy'\]"):
        ts.summarise(hand_made.drop(columns="accuracy"))
    with pytest.raises(ValueError, match=r"unknown selection value\(s\) \['best'\]"):
        ts.summarise(hand_made.assign(selection="best"))
    with pytest.raises(ValueError, match="must name their layer"):
        ts.summarise(hand_made.assign(layer=None))
    with pytest.raises(ValueError, match=r"the 'source_model' column must be 'vgg19_imagenet'"):
        transfer_tables(hand_made, compared, "wood", "vgg19_imagenet")


def test_report_tables_and_markdown(hand_made, compared):
    table = transfer_tables(hand_made, compared, "wood", "vgg16_imagenet")
    markdown = markdown_table(shown_table(part_named("table_transfer"), table))
    assert len(table) == 9
    lines = markdown.strip().splitlines()
    assert lines[0].startswith(
        "| embedding | layer | selection | percent_kept | n_features | mean_per_class_accuracy "
        "| ci_low | ci_high | accuracy |"
    )
    assert (
        "| layer | conv5_3 |  | n/a | 512 | 0.630 | 0.580 | 0.680 | 0.730 | 0.590 | 0.1, 1 |"
        in markdown
    )
    shown = markdown_table(shown_table(part_named("table_transfer_comparisons"), compared))
    assert "| fne |  | dks_count | 10.0 | random | 0.215 | 0.150 | 0.280 | better |" in shown
    assert "best_selection" not in shown and "| none |" not in shown


def test_cross_model_table_reads_transfer_partitions_only(hand_made, compared):
    other = hand_made.assign(source_model="vgg16_hed_bsds500", split_source="official")
    other = other[other["repetition"] == 0]
    mit67 = synthetic_transfer_results("mit67", repetitions=2)
    outputs = {
        "vgg16_hed_bsds500/transfer_results/wood": lambda: other,
        "vgg16_imagenet/transfer_results/wood": lambda: pytest.fail("given in memory"),
        "vgg16_imagenet/transfer_comparisons/wood": lambda: pytest.fail("given in memory"),
        "vgg16_imagenet/transfer_results/mit67": lambda: mit67,
        "vgg16_imagenet/transfer_comparisons/mit67": lambda: synthetic_transfer_comparisons(mit67),
        "vgg16_imagenet/wood/embedding_maps": lambda: pytest.fail("not a transfer table"),
        "vgg16_imagenet/dks_layer_summary/wood": lambda: pytest.fail("not a transfer table"),
    }
    table = cross_model_transfer_table(outputs, hand_made, compared, "wood", "vgg16_imagenet")
    markdown = markdown_table(shown_table(part_named("table_transfer_across_datasets"), table))
    assert list(zip(table["dataset"], table["source_model"])) == [
        ("mit67", "vgg16_imagenet"),
        ("wood", "vgg16_hed_bsds500"),
        ("wood", "vgg16_imagenet"),
    ]
    wood = table.iloc[2]
    assert wood["best_layer"] == "conv4_3" and wood["tied_layers"] == "conv5_3"
    assert wood["best_layer_ci"] == "[0.550, 0.650]"
    assert wood["best_selection_mean_per_class_accuracy"] == pytest.approx(0.74)
    assert wood["against_random"] == "+0.215 [0.150, 0.280] better"
    assert wood["against_anova_f"].endswith("no detectable difference")
    assert (wood["full_network_mean_per_class_accuracy"], wood["fne_mean_per_class_accuracy"]) == (
        0.70,
        0.72,
    )
    hed = table.iloc[1]  # no comparisons stored: no interval, no verdict
    assert hed["best_layer"] == "conv4_3" and hed["repetitions"] == 1 and hed["best_layer_ci"] == ""
    assert (
        "| wood | vgg16_hed_bsds500 | official | 1 | logistic_regression | conv4_3 | 0.620 |"
        in markdown
    )
    assert table.iloc[0]["against_random"].endswith("better")
    wrong = {"vgg16_imagenet/transfer_results/mit67": lambda: hand_made}
    with pytest.raises(ValueError, match="vgg16_imagenet/transfer_results/mit67: the 'dataset'"):
        cross_model_transfer_table(wrong, hand_made, compared, "wood", "vgg16_imagenet")


def test_accuracy_per_layer_figure_with_missing_layers():
    results = synthetic_transfer_results(layers=["conv3_3", "conv4_3", "conv5_3", "fc7"])
    # A layer with no accuracy (e.g. a failed fit) is not drawn rather than drawn as zero.
    results.loc[results["layer"] == "conv4_3", "mean_per_class_accuracy"] = np.nan
    figure = figures.transfer_by_layer_figure(results, dataset="digits", source_model="m")
    rendered(figure)
    axes = figure.axes[0]
    assert [tick.get_text() for tick in axes.get_xticklabels()] == ["conv3_3", "conv5_3", "fc7"]
    (legend_box,) = figure.legends  # below the layer names
    legend = [text.get_text() for text in legend_box.get_texts()]
    assert legend[0].startswith("full network (continuous): 0.8")
    assert any(text.startswith("FNE (three-valued)") for text in legend)
    assert any(text.startswith("best selection: FNE") for text in legend)
    assert axes.get_xlabel() and axes.get_ylabel() == "test mean per-class accuracy"
    assert "means over 3 repetitions" in axes.get_title()
    with_intervals = figures.transfer_by_layer_figure(
        results, synthetic_transfer_comparisons(results), dataset="digits", source_model="m"
    )
    assert "bars: 95% intervals" in with_intervals.axes[0].get_title()


def test_accuracy_per_layer_figure_without_layers_says_so():
    results = synthetic_transfer_results(layers=[])
    figure = figures.transfer_by_layer_figure(results, dataset="digits", source_model="m")
    rendered(figure)
    assert "no single layer was evaluated" in text_of(figure)


def test_accuracy_against_features_kept_figure():
    results = synthetic_transfer_results(repetitions=1)
    figure = figures.transfer_curve_figure(results, dataset="digits", source_model="m")
    rendered(figure)
    axes = figure.axes[0]
    assert axes.get_xscale() == "log"
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == [
        "full network (continuous), DKS-ranked (classes past t+ / t-)",
        "full network (continuous), ANOVA-F-ranked",
        "full network (continuous), random",
        "FNE (three-valued), DKS-ranked (classes past t+ / t-)",
        "FNE (three-valued), ANOVA-F-ranked",
        "FNE (three-valued), random",
    ]
    assert [tick.get_text() for tick in axes.get_xticklabels()][:3] == ["1%", "2%", "5%"]
    nothing = synthetic_transfer_results()
    nothing = nothing[nothing["selection"].isna()]
    figure = figures.transfer_curve_figure(nothing, dataset="digits", source_model="m")
    assert "no feature selection was evaluated" in text_of(figure)


def test_class_colours_are_distinct_for_100_classes():
    for n in (5, 15, 100, 256):
        colours = figures.class_colours(n)
        assert colours.shape == (n, 3)
        assert len(np.unique(np.round(colours, 4), axis=0)) == n
    colours = figures.class_colours(100)
    # Neighbouring labels get clearly different colours.
    assert np.abs(np.diff(colours, axis=0)).sum(axis=1).min() > 0.2


def test_embedding_maps_figure_with_100_classes_has_a_note_not_a_legend():
    maps = synthetic_embedding_maps(n_classes=100, images_per_class=10)
    figure = figures.embedding_maps_figure(maps, dataset="cub200", source_model="m")
    rendered(figure)
    assert len([axes for axes in figure.axes if axes.has_data()]) == 4
    assert not figure.legends and all(axes.get_legend() is None for axes in figure.axes)
    assert "100 classes, one colour each" in figure.get_suptitle()
    points = figure.axes[0].collections[0]
    assert len(points.get_offsets()) == 1000
    assert len(np.unique(np.round(points.get_facecolors(), 4), axis=0)) == 100
    assert points.get_sizes()[0] <= 6
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == [
        "conv3_3 (1,000 images)",
        "conv5_3 (1,000 images)",
        "full network (continuous) (1,000 images)",
        "FNE (three-valued) (1,000 images)",
    ]


def test_embedding_maps_figure_with_few_classes_has_a_legend():
    maps = synthetic_embedding_maps(n_classes=4, embeddings=("conv5_3", "fne", "full_network"))
    figure = plot_embedding_maps(maps, "digits", "vgg16_imagenet")
    rendered(figure)
    assert len(figure.axes) == 3
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [f"class {k}" for k in range(4)]
    with pytest.raises(ValueError, match=r"embedding_maps: the 'dataset' column must be 'wood'"):
        plot_embedding_maps(maps, "wood", "vgg16_imagenet")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['x'\]"):
        figures.embedding_maps_figure(maps.drop(columns="x"), dataset="d", source_model="m")


def test_layers_of_other_networks_keep_network_order_in_the_summary():
    """block10a comes after block2a (alphabetical order put it first), the head last."""
    layers = ["block1a_project_bn", "block2a_project_bn", "block10a_project_bn", "avg_pool"]
    summary = ts.summarise(synthetic_transfer_results(layers=layers, source_model="lite"))
    in_table = [layer for layer in summary["layer"] if isinstance(layer, str)]
    assert list(dict.fromkeys(in_table)) == layers


def test_the_transfer_text_names_one_classifier():
    """The verdict and the paragraph after it name the classifier alike, by the solver that
    fitted the rows, not by the configured family (`ridge_or_logistic`)."""
    from cnn_feature_behavior.reporting.dataset_report import transfer_text

    results = synthetic_transfer_results(repetitions=1).assign(
        classifier="ridge_or_logistic", solver="logistic_regression", c_at_grid_edge=False
    )
    comparisons = synthetic_transfer_comparisons(results)
    verdict, method, figures_text = transfer_text(results, comparisons).split("\n\n")
    assert "classifier: multinomial logistic regression" in verdict
    assert "One classifier fits every row (multinomial logistic regression" in method
    assert "ridge_or_logistic" not in verdict + method
    assert "c_at_grid_edge" in method and "t-SNE" in figures_text
