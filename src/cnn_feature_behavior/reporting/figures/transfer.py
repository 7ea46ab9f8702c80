"""Transfer figures: accuracy per layer and accuracy against features kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cnn_feature_behavior.reporting import transfer_summary

from .common import (
    _empty_panel,
    fit_titles,
    layer_axis_width,
    layer_order,
    new_figure,
    set_layer_ticks,
)

SELECTION_COLOURS = {
    "dks_count": "tab:blue",
    "dks_mean_abs": "tab:purple",
    "dks_cover": "tab:red",
    "random": "tab:gray",
}
CURVE_LINESTYLES = {"full_network": "-", "fne": "--"}
WHOLE_COLOURS = {"full_network": "tab:orange", "fne": "tab:green", "best_dks": "tab:blue"}


def _with_std(axes_method, x, rows: pd.DataFrame, **style) -> None:
    std = rows["accuracy_std"].to_numpy(dtype=float)
    yerr = np.where(np.isfinite(std), std, 0.0) if np.isfinite(std).any() else None
    axes_method(x, rows["accuracy"].to_numpy(dtype=float), yerr=yerr, **style)


def accuracy_range(low: list[float], high: list[float]) -> tuple[float, float]:
    """An accuracy axis fitted to the values drawn (error bars included) with a 5% margin,
    within [0, 1]; [0, 1] when nothing is drawn."""
    if not low:
        return 0.0, 1.0
    bottom, top = float(np.min(low)), float(np.max(high))
    margin = max(0.05 * (top - bottom), 0.01)
    return max(0.0, bottom - margin), min(1.0, top + margin)


def transfer_by_layer_figure(results: pd.DataFrame, *, dataset: str, source_model: str) -> Figure:
    """Test accuracy of each layer alone (mean over repetitions, std as error bars), with the
    full network's, the FNE's and the best DKS-ranked selection's accuracies drawn across."""
    summary = transfer_summary.summarise(results)
    layers = summary[(summary["embedding"] == "layer") & summary["selection"].isna()]
    layers = layers[layers["accuracy"].notna()]
    # transfer_summary sorts layers by VGG's names; other networks' names (block10a after
    # block1a) keep the order the evaluation wrote them in, which is the network's.
    written = layer_order(results[results["embedding"] == "layer"].dropna(subset=["layer"]))
    layers = layers.set_index("layer", drop=False).reindex(
        [name for name in written if name in set(layers["layer"])]
    )
    figure = new_figure(layer_axis_width(len(layers), 0.5, 4.5, 9.0), 6.0)
    axes = figure.subplots()
    positions = np.arange(len(layers))
    if len(layers):
        _with_std(
            axes.bar,
            positions,
            layers,
            color="lightsteelblue",
            edgecolor="steelblue",
            capsize=3,
            label="each layer alone",
        )
        set_layer_ticks(axes, layers["layer"].tolist())
        axes.set_xlim(-0.6, len(layers) - 0.4)
    else:
        _empty_panel(axes, "no single layer was evaluated")
    levels = [
        ("full_network", transfer_summary.whole(summary, "full_network"), "-"),
        ("fne", transfer_summary.whole(summary, "fne"), "--"),
        (
            "best_dks",
            transfer_summary.best_selection(summary, transfer_summary.DKS_SELECTIONS),
            ":",
        ),
    ]
    for key, row, style in levels:
        if row is None:
            continue
        if key == "best_dks":
            label = f"best DKS-ranked: {transfer_summary.selection_label(row)}"
        else:
            label = transfer_summary.EMBEDDING_LONG_LABELS[key]
        axes.axhline(
            float(row["accuracy"]),
            color=WHOLE_COLOURS[key],
            linestyle=style,
            linewidth=1.6,
            label=f"{label}: {row['accuracy']:.3f}",
        )
    axes.set_ylim(0, 1)
    axes.set_xlabel("layer")
    axes.set_ylabel("test accuracy")
    # Below the layer names, placed by the layout: inside the axes it would hide the levels it
    # names, at a fixed offset it would cover long or many layer names.
    figure.legend(loc="outside lower center", fontsize=8, ncol=2)
    axes.set_title(
        f"Transfer - accuracy per layer, {dataset} on {source_model}\n"
        f"({transfer_summary.split_description(summary)})",
        fontsize=10,
    )
    return fit_titles(figure)


def transfer_curve_figure(results: pd.DataFrame, *, dataset: str, source_model: str) -> Figure:
    """Test accuracy against the share of features kept (log axis): DKS-ranked against random
    selections of the same sizes, from the full network (solid) and the FNE (dashed)."""
    summary = transfer_summary.summarise(results)
    curves = summary[summary["selection"].notna()]
    figure = new_figure(9, 6)
    axes = figure.subplots()
    percents, low, high = [], [], []
    for embedding in ("full_network", "fne"):
        for selection in transfer_summary.SELECTIONS:
            rows = curves[
                (curves["embedding"] == embedding) & (curves["selection"] == selection)
            ].sort_values("fraction")
            rows = rows[rows["accuracy"].notna()]
            if rows.empty:
                continue
            percent = 100 * rows["fraction"].to_numpy(dtype=float)
            percents.extend(percent)
            spread = np.nan_to_num(rows["accuracy_std"].to_numpy(dtype=float))
            low.extend(rows["accuracy"].to_numpy(dtype=float) - spread)
            high.extend(rows["accuracy"].to_numpy(dtype=float) + spread)
            _with_std(
                axes.errorbar,
                percent,
                rows,
                color=SELECTION_COLOURS[selection],
                linestyle=CURVE_LINESTYLES[embedding],
                marker="o",
                ms=4,
                capsize=2,
                label=f"{transfer_summary.EMBEDDING_LONG_LABELS[embedding]}, "
                f"{transfer_summary.SELECTION_LABELS[selection]}",
            )
    if percents:
        ticks = sorted(set(np.round(percents, 6)))
        axes.set_xscale("log")
        axes.set_xticks(ticks, [f"{tick:g}%" for tick in ticks])
        axes.minorticks_off()
        # Below the axes: the curves fill the fitted axis.
        figure.legend(loc="outside lower center", fontsize=8, ncol=2)
    else:
        _empty_panel(axes, "no feature selection was evaluated")
    axes.set_ylim(*accuracy_range(low, high))
    axes.set_xlabel("features kept (share of the full network, log scale)")
    axes.set_ylabel("test accuracy")
    axes.set_title(
        f"Transfer - accuracy against features kept, {dataset} on {source_model}\n"
        f"({transfer_summary.split_description(summary)})",
        fontsize=10,
    )
    return fit_titles(figure)
