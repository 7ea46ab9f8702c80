"""Figures 6 and 8: the distribution of DKS values, per dataset and by overlap with ImageNet."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .common import (
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


def dks_histograms_figure(
    histograms: pd.DataFrame, mean_images: Mapping[str, float], *, title: str
) -> Figure:
    """Figure 6: DKS histograms of conv features (top) and fc features (bottom), in % of pairs;
    one line per dataset, datasets ordered and coloured by mean images per class."""
    _require_columns(
        histograms, ["dataset", "group", "bin_left", "bin_right", "percent"], "dks_histograms"
    )
    run = _ordered_run_datasets(set(histograms["dataset"]), mean_images, "dks_histograms")
    colours = dataset_colours(dataset_order(mean_images))
    figure = new_figure(9, 6.5)
    panels = figure.subplots(2, 1, sharex=True)
    for axes, group, kind in zip(
        panels, ("conv", "fc"), ("convolutional layers", "fully connected layers")
    ):
        rows = histograms[histograms["group"] == group]
        shown = [name for name in run if name in set(rows["dataset"])]
        without = [name for name in run if name not in shown]
        if not shown:
            _empty_panel(axes, f"no {group} layers in the embedding")
        for name in shown:
            line = rows[rows["dataset"] == name].sort_values("bin_left")
            edges = np.append(line["bin_left"].to_numpy(), line["bin_right"].iloc[-1])
            if len(run) == 1:
                axes.stairs(
                    line["percent"].to_numpy(), edges, color=colours[name], fill=True, alpha=0.3
                )
            axes.stairs(
                line["percent"].to_numpy(),
                edges,
                color=colours[name],
                linewidth=1.2,
                label=_dataset_legend_label(name, mean_images[name]),
            )
        handles, _ = axes.get_legend_handles_labels()
        if without:
            handles.append(Patch(color="none", label=f"no {group} layers: {', '.join(without)}"))
        axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
        axes.axvline(0.0, color="gray", linewidth=0.6)
        axes.set_xlim(-1, 1)
        axes.set_ylabel("(feature, class) pairs (%)")
        axes.set_title(f"DKS of {kind}")
    panels[-1].set_xlabel("DKS(f, c)")
    figure.suptitle(title)
    return figure


def fc_histograms_by_overlap_figure(
    histograms: pd.DataFrame,
    overlap_groups: Mapping[str, Sequence[str]],
    mean_images: Mapping[str, float],
    *,
    source_model: str,
) -> Figure:
    """Figure 8: fc-layer DKS histograms in one panel per group of overlap with ImageNet.

    Datasets outside every group get a panel of their own rather than disappearing, and a
    dataset run on an embedding without fc layers is named as such in its panel.
    """
    _require_columns(
        histograms, ["dataset", "group", "bin_left", "bin_right", "percent"], "dks_histograms"
    )
    fc = histograms[histograms["group"] == "fc"]
    run = _ordered_run_datasets(set(histograms["dataset"]), mean_images, "dks_histograms")
    with_fc = set(fc["dataset"])
    if set(run) - with_fc:
        logger.info(
            "Figure 8: %d dataset(s) have no fc histogram: %s",
            len(set(run) - with_fc),
            sorted(set(run) - with_fc),
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
        shown = [name for name in members_run if name in with_fc]
        without_fc = [name for name in members_run if name not in with_fc]
        if not members_run:
            _empty_panel(axes, "no dataset of this group has been run")
        elif without_fc:
            _empty_panel(axes, f"no fc layers in the embedding of {', '.join(without_fc)}")
        for name in shown:
            rows = fc[fc["dataset"] == name].sort_values("bin_left")
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
            label = "(none run)" if not members_run else "(no fc histogram)"
            axes.legend(handles=[Patch(color="none", label=label)], loc="upper right", fontsize=8)
    panels[-1].set_xlabel("DKS(f, c) of fully connected features")
    figure.suptitle(
        f"Figure 8 - fc DKS by overlap with ImageNet, {source_model}"
        f"{_only_one_note(run, 'dataset')}"
    )
    return figure
