"""The figure functions: numerical helpers against brute force and scipy, every figure drawn
non-blank from small synthetic tables, 1,000 classes and 11 datasets, and clear input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders.report_synthetic import PAPER_DATASETS, synthetic_study, threshold_fit
from matplotlib.figure import Figure
from scipy.stats import ks_2samp

from cnn_feature_behavior.reporting import figures
from cnn_feature_behavior.statistics.dks import signed_ks

OVERLAP_GROUPS = {
    "(a) subset": ["imagenet", "stanforddogs", "catsdogs", "caltech101", "caltech256"],
    "(b) intersecting": ["cub200", "flowers102", "food101"],
    "(c) disjoint": ["wood", "mit67", "textures"],
}


def assert_not_blank(figure: Figure) -> None:
    """Rendered pixels vary and use more than a handful of colours; every axes is labelled."""
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3]
    assert pixels.reshape(-1, 3).std(axis=0).max() > 0
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    assert figure.get_suptitle() or any(axes.get_title() for axes in figure.axes)
    for axes in figure.axes:
        if axes.has_data():
            # Stacked panels that share x carry the label on one of them.
            siblings = axes.get_shared_x_axes().get_siblings(axes)
            assert any(sibling.get_xlabel() for sibling in siblings), axes.get_title()
            assert axes.get_ylabel(), axes.get_title()
    assert any(axes.get_legend() is not None for axes in figure.axes)


def figure_text(figure: Figure) -> str:
    texts = figure.findobj(lambda artist: hasattr(artist, "get_text"))
    return " ".join(text.get_text() for text in texts)


@pytest.fixture(scope="module")
def study() -> dict[str, pd.DataFrame]:
    return synthetic_study("digits", n_classes=5, images_per_class=24, seed=3)


# --- Numerical helpers ---------------------------------------------------------------------------


def brute_force_edfs(values: np.ndarray, is_inner: np.ndarray, bins: int):
    """EDFs at bin edges by counting, with dks.py's bin rule written out per value."""
    low, high = values.min(), values.max()
    bin_of = [min(int((v - low) * (bins / (high - low))), bins - 1) for v in values]
    inner = np.array(
        [sum(1 for b, i in zip(bin_of, is_inner) if i and b <= k) for k in range(bins)]
    )
    outer = np.array(
        [sum(1 for b, i in zip(bin_of, is_inner) if not i and b <= k) for k in range(bins)]
    )
    return inner / is_inner.sum(), outer / (~is_inner).sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inner_outer_distributions_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, size=120)
    is_inner = rng.random(120) < 0.25
    values[is_inner] *= 1.5
    result = figures.inner_outer_distributions(values, is_inner, 20)
    inner, outer = brute_force_edfs(values, is_inner, 20)
    np.testing.assert_allclose(result.inner_edf, inner)
    np.testing.assert_allclose(result.outer_edf, outer)
    np.testing.assert_allclose(np.diff(np.concatenate([[0], inner])) * 100, result.inner_percent)
    gaps = outer - inner
    assert abs(result.signed_dks) == pytest.approx(np.abs(gaps).max())
    assert result.signed_dks == pytest.approx(gaps[result.max_distance_index])
    assert result.bin_edges[0] == values.min()
    assert result.bin_edges[-1] == pytest.approx(values.max())
    np.testing.assert_allclose(result.edf_points, result.bin_edges[1:])


def test_inner_outer_distributions_exact_mode_is_scipy_ks():
    rng = np.random.default_rng(7)
    outer_values = rng.normal(size=150)
    inner_values = rng.normal(0.8, size=50)
    values = np.concatenate([inner_values, outer_values])
    is_inner = np.arange(200) < 50
    exact = figures.inner_outer_distributions(values, is_inner, None)
    reference = ks_2samp(inner_values, outer_values)
    assert exact.signed_dks > 0  # the class has higher values
    assert exact.signed_dks == pytest.approx(reference.statistic)
    assert exact.edf_points[exact.max_distance_index] == pytest.approx(reference.statistic_location)
    assert len(exact.bin_edges) == 101  # histograms still need bins
    # Binning can only hide part of the gap.
    coarse = figures.inner_outer_distributions(values, is_inner, 10)
    assert 0 < coarse.signed_dks <= exact.signed_dks
    assert figures.inner_outer_distributions(-values, is_inner, None).signed_dks < 0


@pytest.mark.parametrize("bins", [100, 7, None])
def test_inner_outer_distributions_equal_the_stored_dks(study, bins):
    embedding, labels = study["embedding"], study["image_index"]["label"].to_numpy()
    reference = signed_ks(embedding.to_numpy(), labels, ["a", "b", "c", "d", "e"], bins=bins)
    for f, feature in enumerate(embedding.columns):
        for c in range(5):
            drawn = figures.inner_outer_distributions(
                embedding[feature].to_numpy(), labels == c, bins
            )
            assert drawn.signed_dks == pytest.approx(reference[f, c], abs=1e-12)


def test_inner_outer_distributions_constant_feature_and_errors():
    constant = figures.inner_outer_distributions(np.full(10, 3.0), np.arange(10) < 4, 100)
    assert constant.signed_dks == 0.0
    assert constant.bin_edges[0] == 3.0
    with pytest.raises(ValueError, match="inside and outside"):
        figures.inner_outer_distributions(np.arange(5.0), np.ones(5, bool), 10)
    with pytest.raises(ValueError, match="non-finite"):
        figures.inner_outer_distributions(np.array([1.0, np.nan]), np.array([True, False]), 10)
    with pytest.raises(ValueError, match="equal-length"):
        figures.inner_outer_distributions(np.arange(4.0), np.ones(3, bool), 10)


def test_select_feature_class_pair():
    dks = pd.DataFrame(
        {
            "layer": ["conv1_1", "conv1_1", "fc6"],
            "cat": [0.1, -0.9, 0.3],
            "dog": [0.95, 0.2, -0.95],
        },
        index=pd.Index(["conv1_1/n0", "conv1_1/n1", "fc6/n0"], name="feature"),
    )
    # |0.95| twice: the first in table order (features, then classes) wins.
    assert figures.select_feature_class_pair(dks) == ("conv1_1/n0", "dog", pytest.approx(0.95))
    assert figures.select_feature_class_pair(dks, class_name="cat") == (
        "conv1_1/n1",
        "cat",
        pytest.approx(-0.9),
    )
    assert figures.select_feature_class_pair(dks, feature="fc6/n0") == (
        "fc6/n0",
        "dog",
        pytest.approx(-0.95),
    )
    assert figures.select_feature_class_pair(dks, "fc6/n0", "cat")[2] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="feature 'conv9/n0'"):
        figures.select_feature_class_pair(dks, feature="conv9/n0")
    with pytest.raises(ValueError, match="class 'cow'"):
        figures.select_feature_class_pair(dks, class_name="cow")


def test_dataset_order_colours_and_line_style():
    order = figures.dataset_order(PAPER_DATASETS)
    assert order[0] == "imagenet" and order[-1] == "food101"
    assert order.index("caltech256") < order.index("textures")  # 120 each: ties by name
    colours = figures.dataset_colours(order)
    assert len(set(colours.values())) == 11
    # A perceptually ordered map: lightness grows with mean images per class.
    lightness = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b, _ in colours.values()]
    assert lightness == sorted(lightness)
    alpha_few, width_few = figures.line_style_for(10)
    alpha_many, width_many = figures.line_style_for(1000)
    assert alpha_many < alpha_few <= 0.9 and width_many < width_few


# --- Every figure renders ------------------------------------------------------------------------


def test_per_dataset_figures_render(study):
    thresholds = study["thresholds"].iloc[0]
    feature = study["embedding"].columns[0]
    is_inner = (study["image_index"]["label"] == 0).to_numpy()
    drawn = [
        figures.feature_class_pair_figure(
            study["embedding"][feature].to_numpy(),
            is_inner,
            feature=feature,
            class_name="class a",
            dataset="digits",
            stored_dks=0.5,
            bins=100,
        ),
        figures.dks_histograms_figure(
            study["dks_histograms"], {"digits": 24.0}, title="Figure 6 - digits"
        ),
        figures.class_counts_figure(
            study["class_counts"],
            t_plus=thresholds["t_plus"],
            t_minus=thresholds["t_minus"],
            dataset="digits",
            source_model="vgg16_imagenet",
        ),
        figures.davg_figure(
            study["davg_curve"],
            t_plus=thresholds["t_plus"],
            t_minus=thresholds["t_minus"],
            dataset="digits",
            source_model="vgg16_imagenet",
        ),
        figures.layer_kept_figure(
            study["layer_kept"], dataset="digits", source_model="vgg16_imagenet"
        ),
    ]
    for figure in drawn:
        assert_not_blank(figure)
    assert "DKS = " in figure_text(drawn[0])
    assert f"t+ = {thresholds['t_plus']:+.3f}" in figure_text(drawn[2])


def test_figure_10_puts_layer_groups_after_the_layers():
    kept = pd.DataFrame(
        {
            "layer": ["all", "conv1_1", "conv", "fc6"],
            "side": "both",
            "percent_real": [30.0, 40.0, 35.0, 20.0],
            "percent_randomised": [5.0, 6.0, 5.5, 4.0],
        }
    )
    figure = figures.layer_kept_figure(kept, dataset="digits", source_model="m")
    assert_not_blank(figure)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == [
        "conv1_1",
        "fc6",
        "all layers",
        "all spatial layers",
    ]
    assert [bar.get_height() for bar in axes.patches[:4]] == [40.0, 20.0, 30.0, 35.0]


def test_figure_9_with_1000_classes_is_a_translucent_band():
    grid = np.round(np.arange(0, 1.001, 0.01), 2)
    rng = np.random.default_rng(0)
    frames = []
    for side, xs in (("positive", grid), ("negative", -grid[::-1])):
        for labels, scale in (("real", 0.5), ("randomised", 0.15)):
            reach = rng.uniform(0.5, 1.5, size=1000) * scale
            counts = (4000 * np.clip(1 - np.abs(xs)[None, :] / reach[:, None], 0, None)).astype(int)
            frames.append(
                pd.DataFrame(
                    {
                        "side": side,
                        "x": np.tile(xs, 1000),
                        "labels": labels,
                        "class": np.repeat(np.arange(1000), len(xs)),
                        "count": counts.ravel(),
                    }
                )
            )
    figure = figures.class_counts_figure(
        pd.concat(frames),
        t_plus=0.15,
        t_minus=-0.12,
        dataset="imagenet",
        source_model="vgg16_imagenet",
    )
    assert_not_blank(figure)
    collections = [c for axes in figure.axes for c in axes.collections]
    assert sum(len(c.get_segments()) for c in collections) == 4 * 1000
    assert all(c.get_alpha() <= 0.05 for c in collections)
    assert "1000 classes" in figure_text(figure)


def paper_summaries() -> pd.DataFrame:
    rows = []
    for k, (name, mean_images) in enumerate(PAPER_DATASETS.items()):
        for depth, layer in enumerate(["conv1_1", "conv3_3", "conv5_3", "fc6", "fc7"]):
            for side, sign in (("positive", 1), ("negative", -1)):
                mode = sign * (0.2 + 0.01 * k + 0.02 * depth)
                rows.append(
                    {
                        "dataset": name,
                        "layer": layer,
                        "side": side,
                        "mode": mode,
                        "low": mode - 0.05,
                        "high": mode + 0.08,
                        "n_pairs": 100,
                        "mean_images_per_class": float(mean_images),
                    }
                )
    return pd.DataFrame(rows)


def test_figure_5_with_11_datasets_dodges_and_orders():
    figure = figures.layer_summary_figure(
        paper_summaries(), PAPER_DATASETS, source_model="vgg16_imagenet"
    )
    assert_not_blank(figure)
    axes = figure.axes[0]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert [label.split(" ")[0] for label in legend[:11]] == figures.dataset_order(PAPER_DATASETS)
    # 11 datasets x 2 sides, each at its own x offset per layer.
    offsets = {round(float(line.get_xdata()[0]), 6) for line in axes.lines if len(line.get_xdata())}
    assert len(offsets) == 11
    assert "only one dataset" not in axes.get_title()


def test_figure_5_with_one_dataset_says_so(study):
    figure = figures.layer_summary_figure(
        study["dks_layer_summary"], {"digits": 24.0}, source_model="vgg16_imagenet"
    )
    assert_not_blank(figure)
    assert "only one dataset run so far: digits" in figure.axes[0].get_title()


def test_figure_5_rejects_an_interval_that_misses_the_mode():
    summary = paper_summaries()
    summary.loc[0, "low"] = summary.loc[0, "mode"] + 0.1
    with pytest.raises(ValueError, match="imagenet, side positive: the 68% interval"):
        figures.layer_summary_figure(summary, PAPER_DATASETS, source_model="vgg16_imagenet")


def test_figure_5_by_model_side_by_side():
    summaries = {"vgg16_imagenet": paper_summaries(), "vgg16_places2": paper_summaries()}
    figure = figures.layer_summary_by_model_figure(summaries, PAPER_DATASETS)
    assert_not_blank(figure)
    assert [axes.get_title() for axes in figure.axes] == [
        "source model vgg16_imagenet (5 layers)",
        "source model vgg16_places2 (5 layers)",
    ]
    with pytest.raises(ValueError, match="at least two source models"):
        figures.layer_summary_by_model_figure({"vgg16_imagenet": paper_summaries()}, PAPER_DATASETS)


def fc_histograms(names) -> pd.DataFrame:
    edges = np.linspace(-1, 1, 101)
    centres = (edges[:-1] + edges[1:]) / 2
    frames = []
    for k, name in enumerate(names):
        density = np.exp(-((np.abs(centres) - 0.2 - 0.01 * k) ** 2) / 0.005)
        frames.append(
            pd.DataFrame(
                {
                    "dataset": name,
                    "group": "fc",
                    "bin_left": edges[:-1],
                    "bin_right": edges[1:],
                    "percent": 100 * density / density.sum(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_figure_6_across_datasets_names_those_without_fc_layers():
    conv = fc_histograms(PAPER_DATASETS).assign(group="conv")
    fc = fc_histograms([name for name in PAPER_DATASETS if name != "wood"])
    figure = figures.dks_histograms_figure(pd.concat([conv, fc]), PAPER_DATASETS, title="Fig 6")
    assert_not_blank(figure)
    conv_axes, fc_axes = figure.axes
    assert len(conv_axes.get_legend().get_texts()) == 11
    fc_legend = [t.get_text() for t in fc_axes.get_legend().get_texts()]
    assert len(fc_legend) == 11 and fc_legend[-1] == "no head layers: wood"
    # By mean images per class, with the skewness of each line (symmetric here).
    assert fc_legend[0] == "imagenet (50 images/class), skewness +0.00"


def test_figure_8_groups_datasets_and_keeps_ungrouped_ones():
    names = ["caltech101", "food101", "digits"]
    mean_images = {"caltech101": 91.0, "food101": 250.0, "digits": 180.0}
    figure = figures.fc_histograms_by_overlap_figure(
        fc_histograms(names), OVERLAP_GROUPS, mean_images, source_model="vgg16_imagenet"
    )
    assert_not_blank(figure)
    # A panel per group with a dataset run; (c) disjoint has none and is named in the title.
    assert len(figure.axes) == 3
    assert "no dataset with head layers run yet in (c) disjoint" in figure.get_suptitle()
    assert "not in the paper's grouping" in figure.axes[2].get_title()
    legends = [[t.get_text() for t in axes.get_legend().get_texts()] for axes in figure.axes]
    assert legends[0] == ["caltech101 (91 images/class)"]
    assert legends[2] == ["digits (180 images/class)"]


def test_figure_8_names_datasets_run_without_fc_layers():
    histograms = fc_histograms(["caltech101"]).assign(group="conv")
    nothing = figures.fc_histograms_by_overlap_figure(
        histograms, OVERLAP_GROUPS, {"caltech101": 20.0}, source_model="m"
    )
    assert nothing is None  # no panel would hold data
    both = pd.concat([histograms, fc_histograms(["food101"])])
    figure = figures.fc_histograms_by_overlap_figure(
        both, OVERLAP_GROUPS, {"caltech101": 20.0, "food101": 250.0}, source_model="m"
    )
    assert_not_blank(figure)
    assert [axes.get_title().split(":")[0] for axes in figure.axes] == ["(b) intersecting"]
    assert "no head layers in the embedding of caltech101" in figure.get_suptitle()


def test_figure_8_with_11_datasets():
    figure = figures.fc_histograms_by_overlap_figure(
        fc_histograms(PAPER_DATASETS), OVERLAP_GROUPS, PAPER_DATASETS, source_model="vgg16_imagenet"
    )
    assert_not_blank(figure)
    assert len(figure.axes) == 3
    assert sum(len(axes.get_legend().get_texts()) for axes in figure.axes) == 11


def test_threshold_fit_figure_with_and_without_a_fit():
    thresholds = pd.DataFrame(
        {"dataset": list(PAPER_DATASETS), "mean_images_per_class": list(PAPER_DATASETS.values())}
    )
    thresholds["t_plus"] = 0.4 - 0.06 * np.log(thresholds["mean_images_per_class"])
    thresholds["t_minus"] = -thresholds["t_plus"] * 0.8
    figure = figures.threshold_fit_figure(
        thresholds, threshold_fit(thresholds), source_model="vgg16_imagenet"
    )
    assert_not_blank(figure)
    assert "R\u00b2 = 1.00 (11 datasets)" in figure_text(figure)
    one = thresholds.iloc[[0]]
    figure = figures.threshold_fit_figure(one, threshold_fit(one), source_model="vgg16_imagenet")
    assert_not_blank(figure)
    assert "no fit (1 dataset(s))" in figure_text(figure)
    assert "only one dataset run so far: imagenet" in figure.axes[0].get_title().replace("\n", " ")


def test_missing_columns_are_named(study):
    with pytest.raises(ValueError, match=r"class_counts: missing column\(s\) \['labels'\]"):
        figures.class_counts_figure(
            study["class_counts"].drop(columns="labels"),
            t_plus=0.1,
            t_minus=-0.1,
            dataset="digits",
            source_model="m",
        )
    with pytest.raises(ValueError, match="no rows for side='negative', labels='randomised'"):
        counts = study["class_counts"]
        figures.class_counts_figure(
            counts[(counts["side"] == "positive") | (counts["labels"] == "real")],
            t_plus=0.1,
            t_minus=-0.1,
            dataset="digits",
            source_model="m",
        )
