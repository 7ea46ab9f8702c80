"""Figures 6 and 8: the distribution of DKS values, per dataset and by overlap with ImageNet."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from cnn_feature_behavior.extraction.layer_kinds import (
    HEAD,
    LAYER_KIND_LABELS,
    LAYER_KINDS,
    SPATIAL,
)
from cnn_feature_behavior.reporting.symmetry import (
    HISTOGRAM_COLUMNS,
    histogram_moments,
    rows_of_kind,
)

from .common import (
    MAX_FIGURE_WIDTH,
    _dataset_legend_label,
    _empty_panel,
    _only_one_note,
    _ordered_run_datasets,
    _require_columns,
    dataset_colours,
    dataset_order,
    new_figure,
)

logger = logging.getLogger(__name__)

LAYER_KIND_TITLES = {
    SPATIAL: "spatial layers (feature maps averaged over space; VGG's conv layers)",
    HEAD: "head layers (1-D: VGG's fc layers, a pooled top, the logits)",
}


def _draw_kind_panel(
    axes: Axes,
    rows: pd.DataFrame,
    run: Sequence[str],
    colours: Mapping[str, tuple[float, ...]],
    mean_images: Mapping[str, float],
    kind: str,
) -> None:
    """One layer kind's DKS histogram per dataset, each labelled with its skewness."""
    shown = [name for name in run if name in set(rows["dataset"])]
    without = [name for name in run if name not in shown]
    if not shown:
        _empty_panel(axes, f"no {LAYER_KIND_LABELS[kind]} in the embedding")
    for name in shown:
        line = rows[rows["dataset"] == name].sort_values("bin_left")
        edges = np.append(line["bin_left"].to_numpy(), line["bin_right"].iloc[-1])
        skewness = histogram_moments(
            line["bin_left"].to_numpy(), line["bin_right"].to_numpy(), line["percent"]
        )["skewness"]
        skewness = round(skewness, 2) + 0.0  # + 0.0 turns -0.0 into 0.0: no "-0.00"
        if len(run) == 1:
            axes.stairs(
                line["percent"].to_numpy(), edges, color=colours[name], fill=True, alpha=0.3
            )
        axes.stairs(
            line["percent"].to_numpy(),
            edges,
            color=colours[name],
            linewidth=1.2,
            label=f"{_dataset_legend_label(name, mean_images[name])}, skewness {skewness:+.2f}",
        )
    handles, _ = axes.get_legend_handles_labels()
    if without:
        handles.append(
            Patch(color="none", label=f"no {LAYER_KIND_LABELS[kind]}: {', '.join(without)}")
        )
    axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    axes.axvline(0.0, color="gray", linewidth=0.6)
    axes.set_xlim(-1, 1)
    axes.set_ylabel("(feature, class) pairs (%)")


def dks_histograms_figure(
    histograms: pd.DataFrame, mean_images: Mapping[str, float], *, title: str
) -> Figure:
    """Figure 6: DKS histograms of spatial-layer features (top) and head-layer features
    (bottom), in % of pairs; one line per dataset, datasets ordered and coloured by mean images
    per class, each labelled with its skewness (the paper's symmetry finding)."""
    _require_columns(histograms, HISTOGRAM_COLUMNS, "dks_histograms")
    run = _ordered_run_datasets(set(histograms["dataset"]), mean_images, "dks_histograms")
    colours = dataset_colours(dataset_order(mean_images))
    figure = new_figure(9, 6.5)
    panels = figure.subplots(2, 1, sharex=True)
    for axes, kind in zip(panels, LAYER_KINDS):
        _draw_kind_panel(axes, rows_of_kind(histograms, kind), run, colours, mean_images, kind)
        axes.set_title(f"DKS of {LAYER_KIND_TITLES[kind]}")
    panels[-1].set_xlabel("DKS(f, c)")
    figure.suptitle(title)
    return figure


def dks_histograms_by_model_figure(
    histograms: Mapping[str, pd.DataFrame], mean_images: Mapping[str, float]
) -> Figure:
    """Figure 6 for each source model side by side (one column each): spatial layers above head
    layers, each dataset in the same colour everywhere, each line with its skewness."""
    if len(histograms) < 2:
        raise ValueError(f"need at least two source models, got {sorted(histograms)}")
    for table in histograms.values():
        _require_columns(table, HISTOGRAM_COLUMNS, "dks_histograms")
    names = set().union(*(set(table["dataset"]) for table in histograms.values()))
    run = _ordered_run_datasets(names, mean_images, "dks_histograms")
    colours = dataset_colours(dataset_order(mean_images))
    models = sorted(histograms)
    figure = new_figure(min(MAX_FIGURE_WIDTH, 5.2 * len(models) + 1), 6.5)
    panels = figure.subplots(2, len(models), sharex=True, squeeze=False)
    for column, model in enumerate(models):
        for row, kind in enumerate(LAYER_KINDS):
            axes = panels[row, column]
            of_kind = rows_of_kind(histograms[model], kind)
            _draw_kind_panel(axes, of_kind, run, colours, mean_images, kind)
            axes.set_title(f"{model}: {LAYER_KIND_LABELS[kind]}", fontsize=10)
        panels[-1, column].set_xlabel("DKS(f, c)")
    figure.suptitle("Figure 6 by source model: DKS of spatial and of head layers")
    return figure


def fc_histograms_by_overlap_figure(
    histograms: pd.DataFrame,
    overlap_groups: Mapping[str, Sequence[str]],
    mean_images: Mapping[str, float],
    *,
    source_model: str,
) -> Figure:
    """Figure 8: head-layer DKS histograms (VGG's fc layers), one panel per group of overlap with
    ImageNet.

    Datasets outside every group get a panel of their own rather than disappearing, and a
    dataset run on an embedding without head layers is named as such in its panel.
    """
    _require_columns(histograms, HISTOGRAM_COLUMNS, "dks_histograms")
    head = rows_of_kind(histograms, HEAD)
    run = _ordered_run_datasets(set(histograms["dataset"]), mean_images, "dks_histograms")
    with_head = set(head["dataset"])
    if set(run) - with_head:
        logger.info(
            "Figure 8: %d dataset(s) have no head-layer histogram: %s",
            len(set(run) - with_head),
            sorted(set(run) - with_head),
        )
    colours = dataset_colours(dataset_order(mean_images))
    grouped = {name for members in overlap_groups.values() for name in members}
    panels_spec = dict(overlap_groups)
    ungrouped = [name for name in run if name not in grouped]
    if ungrouped:
        panels_spec["not in the paper's grouping"] = ungrouped
    figure = new_figure(9, 2.9 * len(panels_spec) + 0.6)
    panels = np.atleast_1d(figure.subplots(len(panels_spec), 1, sharex=True))
    for axes, (title, members) in zip(panels, panels_spec.items()):
        members_run = [name for name in run if name in set(members)]
        shown = [name for name in members_run if name in with_head]
        without_head = [name for name in members_run if name not in with_head]
        if not members_run:
            _empty_panel(axes, "no dataset of this group has been run")
        elif without_head:
            _empty_panel(axes, f"no head layers in the embedding of {', '.join(without_head)}")
        for name in shown:
            rows = head[head["dataset"] == name].sort_values("bin_left")
            edges = np.append(rows["bin_left"].to_numpy(), rows["bin_right"].iloc[-1])
            axes.stairs(
                rows["percent"].to_numpy(),
                edges,
                color=colours[name],
                linewidth=1.3,
                label=_dataset_legend_label(name, mean_images[name]),
            )
        axes.axvline(0.0, color="gray", linewidth=0.6)
        axes.set_xlim(-1, 1)
        axes.set_ylabel("(feature, class) pairs (%)")
        axes.set_title(f"{title}: {', '.join(members)}", fontsize=9)
        if shown:
            axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
        else:
            label = "(none run)" if not members_run else "(no head-layer histogram)"
            axes.legend(handles=[Patch(color="none", label=label)], loc="upper right", fontsize=8)
    panels[-1].set_xlabel("DKS(f, c) of head-layer features")
    figure.suptitle(
        f"Figure 8 - head-layer DKS by overlap with ImageNet, {source_model}"
        f"{_only_one_note(run, 'dataset')}"
    )
    return figure
