"""Every report figure readable from 13 to 112 layers and from 10 to 1,000 classes, with the
long names of a real run (EfficientNet-Lite0's layers, `efficientnet_lite0_imagenet`): no text
cut off at the figure's edge, no legend over a label, no panel without data, axes fitted to the
data (tests/builders/figure_checks.py)."""

from __future__ import annotations

import pandas as pd
import pytest
from builders.figure_checks import unreadable
from builders.report_synthetic import (
    PAPER_DATASETS,
    many_layers,
    synthetic_embedding_maps,
    synthetic_study,
    synthetic_transfer_results,
    threshold_fit,
)

from cnn_feature_behavior.extraction.source_models.architecture import (
    conv_layer_names,
    paper_layer_name,
)
from cnn_feature_behavior.extraction.source_models.efficientnet_lite import (
    FEATURE_LAYERS,
    HEAD_LAYERS,
)
from cnn_feature_behavior.reporting import figures

MODEL = "efficientnet_lite0_imagenet"
DATASET = "caltech101"
LAYER_SETS = {
    "vgg16": {paper_layer_name(name): ("conv", 2) for name in conv_layer_names("vgg16")}
    | {"fc6": ("fc", 2), "fc7": ("fc", 2)},
    "lite0": {name: ("head" if name in HEAD_LAYERS else "spatial", 2) for name in FEATURE_LAYERS},
    "112 layers": many_layers(110),
}
GROUPS = {
    "(a) subset of ImageNet": ["imagenet", "stanforddogs", "catsdogs", "caltech101", "caltech256"],
    "(b) intersects ImageNet": ["cub200", "flowers102", "food101"],
    "(c) disjoint from ImageNet": ["wood", "mit67", "textures"],
}


@pytest.fixture(scope="module", params=list(LAYER_SETS))
def run(request) -> dict:
    layers = LAYER_SETS[request.param]
    study = synthetic_study(DATASET, 10, 12, layers=layers, source_model=MODEL)
    return study | {
        "transfer": synthetic_transfer_results(DATASET, MODEL, layers=list(layers)),
        "row": study["thresholds"].iloc[0],
    }


@pytest.fixture(scope="module")
def paper_datasets() -> dict[str, pd.DataFrame]:
    """The paper's eleven datasets (mean images per class a tenth of Table 2's), VGG16's layers."""
    studies = [
        synthetic_study(name, 4, images // 10, seed=k, layers=LAYER_SETS["vgg16"])
        for k, (name, images) in enumerate(PAPER_DATASETS.items())
    ]
    return {
        table: pd.concat([study[table] for study in studies], ignore_index=True)
        for table in ("dks_histograms", "dks_layer_summary", "thresholds")
    }


MEAN_IMAGES = {name: float(images // 10) for name, images in PAPER_DATASETS.items()}


def assert_readable(figure) -> None:
    assert unreadable(figure) == {}


def test_figures_of_one_dataset(run):
    row = run["row"]
    only_one = f"Figure 6 - DKS distribution across datasets, {MODEL} - only one dataset run so far"
    feature = run["embedding"].columns[0]
    drawn = [
        figures.feature_class_pair_figure(
            run["embedding"][feature].to_numpy(),
            (run["image_index"]["class_name"] == "class a").to_numpy(),
            feature=feature,
            class_name="class a",
            dataset=DATASET,
            stored_dks=float(run["dks"].loc[feature, "class a"]),
            bins=100,
        ),
        figures.dks_histograms_figure(run["dks_histograms"], {DATASET: 12.0}, title=only_one),
        figures.class_counts_figure(
            run["class_counts"],
            t_plus=row["t_plus"],
            t_minus=row["t_minus"],
            dataset=DATASET,
            source_model=MODEL,
        ),
        figures.davg_figure(
            run["davg_curve"],
            t_plus=row["t_plus"],
            t_minus=row["t_minus"],
            dataset=DATASET,
            source_model=MODEL,
        ),
        figures.layer_kept_figure(run["layer_kept"], dataset=DATASET, source_model=MODEL),
        figures.layer_summary_figure(run["dks_layer_summary"], {DATASET: 12.0}, source_model=MODEL),
        figures.threshold_fit_figure(
            run["thresholds"], threshold_fit(run["thresholds"]), source_model=MODEL
        ),
        figures.fc_histograms_by_overlap_figure(
            run["dks_histograms"], GROUPS, {DATASET: 12.0}, source_model=MODEL
        ),
    ]
    for figure in drawn:
        assert_readable(figure)


def test_transfer_figures_fit_their_data(run):
    by_layer = figures.transfer_by_layer_figure(
        run["transfer"], dataset=DATASET, source_model=MODEL
    )
    assert_readable(by_layer)
    curve = figures.transfer_curve_figure(run["transfer"], dataset=DATASET, source_model=MODEL)
    assert_readable(curve)
    selected = run["transfer"][run["transfer"]["selection"].notna()]["accuracy"]
    bottom, top = curve.axes[0].get_ylim()
    assert bottom <= selected.min() and top >= selected.max()
    # Fitted: the axis spans little more than the curves (0 to 1 would squash them together).
    assert top - bottom < 1.3 * (selected.max() - selected.min()) + 0.1


def test_figures_across_the_paper_datasets(paper_datasets):
    thresholds = paper_datasets["thresholds"].assign(source_model=MODEL)
    drawn = [
        figures.layer_summary_figure(
            paper_datasets["dks_layer_summary"], MEAN_IMAGES, source_model=MODEL
        ),
        figures.dks_histograms_figure(
            paper_datasets["dks_histograms"], MEAN_IMAGES, title=f"Figure 6 - {MODEL}"
        ),
        figures.fc_histograms_by_overlap_figure(
            paper_datasets["dks_histograms"], GROUPS, MEAN_IMAGES, source_model=MODEL
        ),
        figures.threshold_fit_figure(thresholds, threshold_fit(thresholds), source_model=MODEL),
        figures.layer_summary_by_model_figure(
            {
                MODEL: paper_datasets["dks_layer_summary"],
                "vgg16_imagenet": paper_datasets["dks_layer_summary"],
            },
            MEAN_IMAGES,
        ),
        figures.dks_histograms_by_model_figure(
            {
                MODEL: paper_datasets["dks_histograms"],
                "vgg16_imagenet": paper_datasets["dks_histograms"],
            },
            MEAN_IMAGES,
        ),
    ]
    for figure in drawn:
        assert_readable(figure)


def test_figures_with_1000_classes():
    study = synthetic_study(
        "imagenet", 1000, 3, layers={"conv5_3": ("conv", 3), "fc7": ("fc", 3)}, source_model=MODEL
    )
    row = study["thresholds"].iloc[0]
    assert_readable(
        figures.class_counts_figure(
            study["class_counts"],
            t_plus=row["t_plus"],
            t_minus=row["t_minus"],
            dataset="imagenet",
            source_model=MODEL,
        )
    )
    maps = synthetic_embedding_maps("imagenet", MODEL, n_classes=1000, images_per_class=2)
    assert_readable(figures.embedding_maps_figure(maps, dataset="imagenet", source_model=MODEL))


def test_figure_8_is_not_drawn_without_head_layers(run):
    spatial_only = run["dks_histograms"][run["dks_histograms"]["group"].isin(["conv", "spatial"])]
    assert (
        figures.fc_histograms_by_overlap_figure(
            spatial_only, GROUPS, {DATASET: 12.0}, source_model=MODEL
        )
        is None
    )
    figure = figures.dks_histograms_figure(spatial_only, {DATASET: 12.0}, title="Figure 6")
    assert len(figure.axes) == 1 and "no head layers in the embedding" in figure.get_suptitle()
    assert_readable(figure)
