"""Transfer in the reports: the summary over repetitions against a direct computation, the
verdict sentence on a hand-made table, the cross-model table, and the transfer figures drawn
from synthetic tables (missing layers, one repetition, 100 classes on the map)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders.report_synthetic import synthetic_embedding_maps, synthetic_transfer_results
from matplotlib.figure import Figure

from cnn_feature_behavior.pipelines.reporting.nodes import (
    cross_model_transfer_table,
    plot_embedding_maps,
    transfer_tables,
)
from cnn_feature_behavior.reporting import figures
from cnn_feature_behavior.reporting import transfer_summary as ts
from cnn_feature_behavior.reporting.parts import part_named, shown_table
from cnn_feature_behavior.reporting.report import markdown_table


def rendered(figure: Figure) -> np.ndarray:
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3]
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    return pixels


def text_of(figure: Figure) -> str:
    texts = figure.findobj(lambda artist: hasattr(artist, "get_text"))
    return " ".join(text.get_text() for text in texts)


def row(embedding, layer, selection, fraction, n_features, repetition, accuracy, c=1.0):
    return {
        "dataset": "wood",
        "source_model": "vgg16_imagenet",
        "embedding": embedding,
        "layer": layer,
        "selection": selection,
        "fraction": fraction,
        "n_features": n_features,
        "split_source": "seeded",
        "repetition": repetition,
        "classifier": "logistic_regression",
        "regularisation_c": c,
        "n_train": 100,
        "n_test": 200,
        "accuracy": accuracy,
        "mean_per_class_accuracy": accuracy - 0.1,
    }


@pytest.fixture
def hand_made() -> pd.DataFrame:
    """Two repetitions: conv5_3 beats conv4_3 on the mean though not in every repetition; the
    FNE's top 10% by DKS beats everything selected; fraction 1 rows are no selection."""
    rows = []
    for repetition, (a, b) in enumerate([(0.62, 0.60), (0.58, 0.66)]):
        rows += [
            row("layer", "conv4_3", None, None, 512, repetition, a, c=0.1),
            row("layer", "conv5_3", None, None, 512, repetition, b, c=0.1 * (1 + 9 * repetition)),
            row("full_network", None, None, None, 4224, repetition, 0.70),
            row("fne", None, None, None, 4224, repetition, 0.72),
            row("fne", None, "dks_count", 0.1, 422, repetition, 0.74),
            row("fne", None, "random", 0.1, 422, repetition, 0.50 + 0.1 * repetition),
            row("fne", None, "dks_count", 1.0, 4224, repetition, 0.80),
            row("full_network", None, "dks_mean_abs", 0.1, 422, repetition, 0.73),
        ]
    return pd.DataFrame(rows)


def test_summary_matches_a_direct_computation(hand_made):
    summary = ts.summarise(hand_made)
    layers = summary[summary["embedding"] == "layer"]
    assert layers["layer"].tolist() == ["conv4_3", "conv5_3"]
    conv5 = layers.iloc[1]
    assert conv5["accuracy"] == pytest.approx(np.mean([0.60, 0.66]))
    assert conv5["accuracy_std"] == pytest.approx(np.std([0.60, 0.66], ddof=1))
    assert conv5["regularisation_c"] == "0.1, 1" and conv5["repetitions"] == 2
    random = summary[summary["selection"] == "random"].iloc[0]
    assert random["accuracy"] == pytest.approx(0.55)
    # Layers, then the whole embeddings, then the selections.
    assert summary["embedding"].tolist()[:4] == ["layer", "layer", "full_network", "fne"]
    assert len(summary) == 8


def test_verdict_sentence_on_a_hand_made_table(hand_made):
    assert ts.transfer_verdict(hand_made) == (
        "On wood with vgg16_imagenet (seeded split, mean \u00b1 standard deviation over 2 "
        "repetitions), the best single layer is conv5_3 (accuracy 0.630 \u00b1 0.042) and the "
        "best selection is the FNE, DKS-ranked (classes past t+ / t-), top 10% (422 features) "
        "(0.740 \u00b1 0.000; random at that size 0.550 \u00b1 0.071); with every feature: full "
        "network 0.700 \u00b1 0.000, FNE 0.720 \u00b1 0.000; classifier: logistic_regression."
    )


def test_verdict_with_one_repetition_and_nothing_selected():
    table = synthetic_transfer_results("wood", repetitions=1, layers=["conv5_3"])
    table = table[table["selection"].isna()]
    sentence = ts.transfer_verdict(table)
    assert sentence.startswith("On wood with vgg16_imagenet (official split), the best single ")
    assert "\u00b1" not in sentence and "best selection" not in sentence


def test_results_are_checked_with_the_problem_named(hand_made):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['accuracy'\]"):
        ts.summarise(hand_made.drop(columns="accuracy"))
    with pytest.raises(ValueError, match=r"unknown selection value\(s\) \['best'\]"):
        ts.summarise(hand_made.assign(selection="best"))
    with pytest.raises(ValueError, match="must name their layer"):
        ts.summarise(hand_made.assign(layer=None))
    with pytest.raises(ValueError, match=r"the 'source_model' column must be 'vgg19_imagenet'"):
        transfer_tables(hand_made, "wood", "vgg19_imagenet")


def test_report_table_and_markdown(hand_made):
    table = transfer_tables(hand_made, "wood", "vgg16_imagenet")
    markdown = markdown_table(shown_table(part_named("table_transfer"), table))
    assert len(table) == 8
    lines = markdown.strip().splitlines()
    assert lines[0].startswith("| embedding | layer | selection | percent_kept | n_features |")
    row = "| layer | conv5_3 |  | n/a | 512 | 0.630 | 0.042 | 0.530 | 0.042 | 0.1, 1 | 0 | logistic_regression |"
    assert row in lines
    assert "| fne |  | dks_count | 10.0 | 422 | 0.740 | 0.000 |" in markdown


def test_cross_model_table_reads_transfer_partitions_only(hand_made):
    other = hand_made.assign(source_model="vgg16_hed_bsds500", split_source="official")
    other = other[other["repetition"] == 0]
    outputs = {
        "vgg16_hed_bsds500/transfer_results/wood": lambda: other,
        "vgg16_imagenet/transfer_results/wood": lambda: pytest.fail("given in memory"),
        "vgg16_imagenet/transfer_results/mit67": lambda: synthetic_transfer_results(
            "mit67", repetitions=2
        ),
        "vgg16_imagenet/wood/embedding_maps": lambda: pytest.fail("not a transfer table"),
        "vgg16_imagenet/dks_layer_summary/wood": lambda: pytest.fail("not a transfer table"),
    }
    table = cross_model_transfer_table(outputs, hand_made, "wood", "vgg16_imagenet")
    markdown = markdown_table(shown_table(part_named("table_transfer_across_datasets"), table))
    assert list(zip(table["dataset"], table["source_model"])) == [
        ("mit67", "vgg16_imagenet"),
        ("wood", "vgg16_hed_bsds500"),
        ("wood", "vgg16_imagenet"),
    ]
    wood = table.iloc[2]
    assert wood["best_layer"] == "conv5_3"
    assert wood["best_selection_accuracy"] == pytest.approx(0.74)
    assert wood["random_same_size_accuracy"] == pytest.approx(0.55)
    assert (wood["full_network_accuracy"], wood["fne_accuracy"]) == (0.70, 0.72)
    hed = table.iloc[1]
    assert hed["best_layer"] == "conv4_3" and hed["repetitions"] == 1
    assert "| wood | vgg16_hed_bsds500 | official | 1 | conv4_3 | 0.620 |" in markdown
    wrong = {"vgg16_imagenet/transfer_results/mit67": lambda: hand_made}
    with pytest.raises(ValueError, match="vgg16_imagenet/transfer_results/mit67: the 'dataset'"):
        cross_model_transfer_table(wrong, hand_made, "wood", "vgg16_imagenet")


def test_accuracy_per_layer_figure_with_missing_layers():
    results = synthetic_transfer_results(layers=["conv3_3", "conv4_3", "conv5_3", "fc7"])
    # A layer with no accuracy (e.g. a failed fit) is not drawn rather than drawn as zero.
    results.loc[results["layer"] == "conv4_3", "accuracy"] = np.nan
    figure = figures.transfer_by_layer_figure(results, dataset="digits", source_model="m")
    rendered(figure)
    axes = figure.axes[0]
    assert [tick.get_text() for tick in axes.get_xticklabels()] == ["conv3_3", "conv5_3", "fc7"]
    (legend_box,) = figure.legends  # below the layer names
    legend = [text.get_text() for text in legend_box.get_texts()]
    assert legend[0].startswith("full network (continuous): 0.8")
    assert any(text.startswith("FNE (three-valued)") for text in legend)
    assert any(text.startswith("best DKS-ranked: FNE") for text in legend)
    assert axes.get_xlabel() and axes.get_ylabel()
    assert "mean \u00b1 standard deviation over 3 repetitions" in axes.get_title()


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
        "full network (continuous), random",
        "FNE (three-valued), DKS-ranked (classes past t+ / t-)",
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
    verdict, method, figures_text = transfer_text(results).split("\n\n")
    assert verdict.endswith("classifier: logistic_regression.")
    assert "Classifier: logistic_regression (column solver)" in method
    assert "ridge_or_logistic" not in verdict + method
    assert "c_at_grid_edge" in method and "t-SNE" in figures_text
