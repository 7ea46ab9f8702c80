"""Every layer-wise figure, table and transfer row with a layer list the size of a DenseNet's
(112 layers, named as a non-VGG network names them, in the spatial / head vocabulary): drawn,
at most MAX_FIGURE_WIDTH wide, every layer named once in order, no two names overlapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders.report_synthetic import (
    many_layers,
    report_part_outputs,
    synthetic_few_shot_results,
    synthetic_retrieval_scores,
    synthetic_study,
    synthetic_transfer_comparisons,
    synthetic_transfer_results,
)
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cnn_feature_behavior.pipelines.reporting import parts
from cnn_feature_behavior.reporting import figures, transfer_summary
from cnn_feature_behavior.reporting.figures.common import MAX_FIGURE_WIDTH, set_layer_ticks

LAYERS = many_layers(110)  # 110 spatial block outputs, a pooled top, the logits


@pytest.fixture(scope="module")
def study() -> dict[str, pd.DataFrame]:
    return synthetic_study("digits", n_classes=4, images_per_class=20, seed=5, layers=LAYERS)


def named_ticks(axes: Axes) -> list[str]:
    return [label.get_text() for label in axes.get_xticklabels() if label.get_text()]


def assert_readable_layer_axis(figure: Figure, axes: Axes, expected: list[str]) -> None:
    figure.canvas.draw()
    assert figure.get_figwidth() <= MAX_FIGURE_WIDTH
    assert named_ticks(axes) == expected
    renderer = figure.canvas.get_renderer()
    boxes = [
        label.get_window_extent(renderer) for label in axes.get_xticklabels() if label.get_text()
    ]
    overlaps = [i for i in range(len(boxes) - 1) if boxes[i].x1 > boxes[i + 1].x0 + 0.5]
    assert not overlaps, f"tick labels overlap at {[expected[i] for i in overlaps[:5]]}"


def test_the_study_has_112_layers_of_both_kinds(study):
    assert study["dks"]["layer"].nunique() == 112
    assert set(study["dks_histograms"]["group"]) >= {"spatial", "head"}


def test_figure_10_names_every_layer_and_the_kind_groups(study):
    kept = study["layer_kept"]
    groups = (
        kept.assign(layer=kept["layer"].map(lambda name: LAYERS[name][0]))
        .groupby(["layer", "side"], as_index=False, sort=False)[
            ["percent_real", "percent_randomised"]
        ]
        .mean()
    )
    figure = figures.layer_kept_figure(
        pd.concat([kept, groups], ignore_index=True), dataset="digits", source_model="densenet"
    )
    expected = [*LAYERS, "all spatial layers", "all head layers"]
    assert_readable_layer_axis(figure, figure.axes[-1], expected)


def test_figure_5_names_every_layer(study):
    summary = study["dks_layer_summary"]
    figure = figures.layer_summary_figure(summary, {"digits": 20.0}, source_model="densenet")
    assert_readable_layer_axis(figure, figure.axes[0], list(LAYERS))


def test_figure_5_by_model_stacks_a_vgg_and_a_112_layer_model():
    vgg = synthetic_study("digits", n_classes=4, images_per_class=20)["dks_layer_summary"]
    many = synthetic_study("digits", n_classes=4, images_per_class=20, layers=LAYERS)
    figure = figures.layer_summary_by_model_figure(
        {"densenet121_imagenet": many["dks_layer_summary"], "vgg16_imagenet": vgg},
        {"digits": 20.0},
    )
    first, second = figure.axes[:2]
    assert first.get_title() == "source model densenet121_imagenet (112 layers)"
    assert second.get_title() == "source model vgg16_imagenet (5 layers)"
    # One row per model: both panels span the figure's width.
    assert first.get_position().x0 == pytest.approx(second.get_position().x0, abs=0.02)
    assert_readable_layer_axis(figure, first, list(LAYERS))


def test_figures_6_and_8_split_spatial_and_head_layers(study):
    figure = figures.dks_histograms_figure(study["dks_histograms"], {"digits": 20.0}, title="6")
    spatial, head = figure.axes[:2]
    assert spatial.get_title().startswith("DKS of spatial layers")
    assert head.get_title().startswith("DKS of head layers")
    assert "skewness" in spatial.get_legend().get_texts()[0].get_text()
    figure_8 = figures.fc_histograms_by_overlap_figure(
        study["dks_histograms"], {"(c) disjoint": ["digits"]}, {"digits": 20.0}, source_model="m"
    )
    assert len(figure_8.axes[0].get_lines()) + len(figure_8.axes[0].patches) > 0
    assert "head-layer DKS" in figure_8.get_suptitle()


def test_transfer_per_layer_figure_and_rows_with_112_layers():
    results = synthetic_transfer_results("digits", repetitions=2, layers=list(LAYERS))
    figure = figures.transfer_by_layer_figure(results, dataset="digits", source_model="densenet")
    assert_readable_layer_axis(figure, figure.axes[0], list(LAYERS))
    table = transfer_summary.report_table(transfer_summary.summarise(results))
    assert table[table["embedding"].astype(str).str.contains("layer")].shape[0] >= 112
    across = transfer_summary.across_table([(results, None)])
    assert across["best_layer"].iloc[0] in LAYERS


def test_the_dataset_report_renders_with_112_layers(study):
    results = synthetic_transfer_results(
        "digits", "densenet121_imagenet", repetitions=1, layers=list(LAYERS)[-12:]
    )
    figure = figures.new_figure(2, 2)
    figure.subplots().plot([0, 1])
    inputs = {
        **study,
        "transfer_results": results,
        "retrieval_scores": synthetic_retrieval_scores(
            "digits", "densenet121_imagenet", layers=list(LAYERS)[-12:]
        ),
        "few_shot_results": synthetic_few_shot_results(
            "digits", "densenet121_imagenet", layers=list(LAYERS)[-12:]
        ),
        "transfer_comparisons": synthetic_transfer_comparisons(results),
        "params:dataset": "digits",
        "params:source_model": "densenet121_imagenet",
    }
    outputs = report_part_outputs(parts.DATASET_REPORT_PARTS, inputs, figure)
    *_, markdown, html = parts.write_dataset_report(
        {"html_dpi": 40}, "digits", "densenet121_imagenet", *outputs
    )
    assert "## Figure 6: DKS distribution of spatial and head features" in markdown
    assert "| digits | spatial layers |" in markdown and "| digits | head layers |" in markdown
    assert "block28b_out" in markdown and html.count("<img") == 9


def test_beyond_150_layers_every_kth_is_named():
    figure = figures.new_figure(MAX_FIGURE_WIDTH, 3)
    axes = figure.subplots()
    names = [f"layer_{i}" for i in range(400)]
    axes.bar(np.arange(400), np.ones(400))
    axes.set_xlabel("layer")
    set_layer_ticks(axes, names)
    shown = named_ticks(axes)
    assert len(shown) <= 150 and shown[:3] == ["layer_0", "layer_3", "layer_6"]
    assert len(axes.get_xticks()) == 400


def test_figure_6_by_model_puts_old_and_new_layer_kinds_side_by_side(study):
    vgg = synthetic_study("digits", n_classes=4, images_per_class=20)["dks_histograms"]
    figure = figures.dks_histograms_by_model_figure(
        {"vgg16_imagenet": vgg, "densenet121_imagenet": study["dks_histograms"]},
        {"digits": 20.0},
    )
    figure.canvas.draw()
    assert figure.get_figwidth() <= MAX_FIGURE_WIDTH
    assert [axes.get_title().replace("\n", " ") for axes in figure.axes] == [
        "densenet121_imagenet: spatial layers",
        "vgg16_imagenet: spatial layers",
        "densenet121_imagenet: head layers",
        "vgg16_imagenet: head layers",
    ]
    for axes in figure.axes:
        (label,) = [text.get_text() for text in axes.get_legend().get_texts()]
        assert label.startswith("digits (20 images/class), skewness ")
    with pytest.raises(ValueError, match="at least two source models"):
        figures.dks_histograms_by_model_figure({"vgg16_imagenet": vgg}, {"digits": 20.0})
