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
    fit_titles,
    new_figure,
)

logger = logging.getLogger(__name__)

LAYER_KIND_TITLES = {
    SPATIAL: "spatial layers (feature maps averaged over space)",
    HEAD: "head layers (1-D: fully connected layers, a pooled top, the logits)",
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
    per class, each labelled with its skewness (the paper's symmetry finding). A layer kind no
    dataset has gets no panel: the title says so."""
    _require_columns(histograms, HISTOGRAM_COLUMNS, "dks_histograms")
    run = _ordered_run_datasets(set(histograms["dataset"]), mean_images, "dks_histograms")
    colours = dataset_colours(dataset_order(mean_images))
    by_kind = {kind: rows_of_kind(histograms, kind) for kind in LAYER_KINDS}
    drawn = [kind for kind in LAYER_KINDS if len(by_kind[kind])] or [SPATIAL]
    figure = new_figure(9, 3.1 * len(drawn) + 0.3)
    panels = np.atleast_1d(figure.subplots(len(drawn), 1, sharex=True))
    for axes, kind in zip(panels, drawn):
        _draw_kind_panel(axes, by_kind[kind], run, colours, mean_images, kind)
        axes.set_title(f"DKS of {LAYER_KIND_TITLES[kind]}")
    panels[-1].set_xlabel("DKS(f, c)")
    absent = [LAYER_KIND_LABELS[kind] for kind in LAYER_KINDS if kind not in drawn]
    note = "".join(f"\nno {label} in the embedding" for label in absent)
    figure.suptitle(title + note)
    return fit_titles(figure)


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
    return fit_titles(figure)


def fc_histograms_by_overlap_figure(
    histograms: pd.DataFrame,
    overlap_groups: Mapping[str, Sequence[str]],
    mean_images: Mapping[str, float],
    *,
    source_model: str,
) -> Figure | None:
    """Figure 8: head-layer DKS histograms (fully connected layers, a pooled top, the logits),
    one panel per group of overlap with ImageNet that has a dataset run with head layers.

    Datasets outside every group get a panel of their own rather than disappearing; the title
    names the datasets run on an embedding without head layers and the groups not drawn. None
    when no dataset run has head layers: there is nothing to draw.
    """
    _require_columns(histograms, HISTOGRAM_COLUMNS, "dks_histograms")
    head = rows_of_kind(histograms, HEAD)
    run = _ordered_run_datasets(set(histograms["dataset"]), mean_images, "dks_histograms")
    without_head = [name for name in run if name not in set(head["dataset"])]
    if without_head:
        logger.info(
            "Figure 8: %d dataset(s) have no head layers: %s", len(without_head), without_head
        )
    grouped = {name for members in overlap_groups.values() for name in members}
    groups = dict(overlap_groups)
    ungrouped = [name for name in run if name not in grouped]
    if ungrouped:
        groups["not in the paper's grouping"] = ungrouped
    drawn = {
        title: [name for name in run if name in set(members) and name not in without_head]
        for title, members in groups.items()
    }
    drawn = {title: names for title, names in drawn.items() if names}
    if not drawn:
        return None
    colours = dataset_colours(dataset_order(mean_images))
    figure = new_figure(9, 2.9 * len(drawn) + 0.9)
    panels = np.atleast_1d(figure.subplots(len(drawn), 1, sharex=True))
    for axes, (title, names) in zip(panels, drawn.items()):
        for name in names:
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
        axes.set_title(f"{title}: {', '.join(groups[title])}", fontsize=9)
        axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    panels[-1].set_xlabel("DKS(f, c) of head-layer features")
    notes = [
        f"Figure 8 - head-layer DKS by overlap with ImageNet, {source_model}"
        f"{_only_one_note(run, 'dataset')}"
    ]
    if without_head:
        notes.append(f"no head layers in the embedding of {', '.join(without_head)}")
    not_drawn = [title for title in groups if title not in drawn]
    if not_drawn:
        notes.append(f"no dataset with head layers run yet in {'; '.join(not_drawn)}")
    figure.suptitle("\n".join(notes))
    return fit_titles(figure)
