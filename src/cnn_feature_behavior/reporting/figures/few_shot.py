"""Few-shot figures: accuracy against shots per layer (one dataset), and per dataset (index)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cnn_feature_behavior.reporting.search_and_few_shot import METHOD_LABELS, embedding_name

from .common import _empty_panel, _require_columns, new_figure

WHOLE_STYLES = {"full_network": ("tab:orange", "-"), "fne": ("tab:green", "--")}
COLUMNS = ("embedding", "layer", "k", "method", "mean", "ci_low", "ci_high")


def _draw_method(axes: Axes, rows: pd.DataFrame, title: str, legend: bool) -> None:
    """One line per embedding: mean accuracy against k (log axis), 95% intervals as bars; layers
    from light (first) to dark (last), the full network and the FNE in their own colours."""
    layers = list(pd.unique(rows.loc[rows["embedding"] == "layer", "layer"]))
    shades = colormaps["viridis"](np.linspace(0.9, 0.05, max(len(layers), 1)))
    for (embedding, layer), group in rows.groupby(["embedding", "layer"], dropna=False, sort=False):
        group = group.sort_values("k")
        if embedding == "layer":
            colour, style, width = shades[layers.index(layer)], "-", 1.0
        else:
            (colour, style), width = WHOLE_STYLES.get(embedding, ("black", ":")), 2.2
        mean = group["mean"].to_numpy(float)
        low = np.clip(mean - group["ci_low"].to_numpy(float), 0, None)
        high = np.clip(group["ci_high"].to_numpy(float) - mean, 0, None)
        axes.errorbar(
            group["k"].to_numpy(float), mean, yerr=np.vstack([np.nan_to_num(low),
                                                              np.nan_to_num(high)]),
            color=colour, linestyle=style, linewidth=width, marker="o", markersize=3,
            capsize=2, label=embedding_name(embedding, layer),
        )  # fmt: skip
    shots = sorted(rows["k"].unique())
    axes.set_xscale("log")
    axes.set_xticks(shots, [str(int(k)) for k in shots])
    axes.minorticks_off()
    axes.set_xlabel("training images per class (k)")
    axes.set_ylabel("test accuracy (mean over episodes)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    if legend:
        axes.legend(fontsize=6.5, ncol=2 if len(layers) > 10 else 1, loc="lower right")


def few_shot_figure(results: pd.DataFrame, *, dataset: str, source_model: str) -> Figure:
    """Accuracy against shots per layer: one panel per method, one line per embedding."""
    _require_columns(results, COLUMNS, "few_shot_results")
    methods = list(pd.unique(results["method"])) or ["nearest_class_mean"]
    figure = new_figure(5.2 * len(methods), 4.6)
    panels = figure.subplots(1, len(methods), squeeze=False)[0]
    for i, (axes, method) in enumerate(zip(panels, methods)):
        rows = results[results["method"] == method]
        if rows.empty:
            _empty_panel(axes, "no few-shot result")
            continue
        _draw_method(axes, rows, METHOD_LABELS.get(method, method), legend=i == len(methods) - 1)
    episodes = int(results["episodes"].min()) if len(results) else 0
    figure.suptitle(
        f"{dataset} on {source_model}: few-shot accuracy per layer "
        f"({episodes} episodes, 95% t intervals)",
        fontsize=11,
    )
    return figure


def few_shot_across_datasets_figure(
    tables: Sequence[pd.DataFrame], *, method: str, source_model: str
) -> Figure:
    """The index's figure: one panel per dataset, accuracy against shots per layer (`method`)."""
    tables = [t for t in tables if not t.empty]
    n = max(len(tables), 1)
    columns = min(n, 3)
    figure = new_figure(4.6 * columns, 3.9 * int(np.ceil(n / columns)))
    panels = figure.subplots(int(np.ceil(n / columns)), columns, squeeze=False).ravel()
    if not tables:
        _empty_panel(panels[0], "no dataset has few-shot results yet")
    for axes, table in zip(panels, tables):
        rows = table[table["method"] == method]
        dataset = str(table["dataset"].iloc[0])
        if rows.empty:
            _empty_panel(axes, f"{dataset}: no {method} results")
            continue
        _draw_method(axes, rows, dataset, legend=axes is panels[0])
    for axes in panels[len(tables) :]:
        axes.set_axis_off()
    figure.suptitle(
        f"Few-shot accuracy per layer across datasets, {source_model}, "
        f"{METHOD_LABELS.get(method, method)}",
        fontsize=11,
    )
    return figure
