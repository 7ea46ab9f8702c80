"""Transfer figures: mean per-class accuracy per layer and against the features kept, with the
95% intervals of transfer_comparisons where given (else the standard deviation over the
repetitions)."""

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
    "anova_f": "tab:olive",
    "random": "tab:gray",
}
CURVE_LINESTYLES = {"full_network": "-", "fne": "--"}
WHOLE_COLOURS = {"full_network": "tab:orange", "fne": "tab:green", "best_dks": "tab:blue"}


def _with_error(axes_method, x, rows: pd.DataFrame, **style) -> tuple[np.ndarray, np.ndarray]:
    """Mean per-class accuracy with its interval (or standard deviation) as error bars; the
    lowest and highest values drawn."""
    value = rows["mean_per_class_accuracy"].to_numpy(dtype=float)
    low, high = rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float)
    if np.isfinite(low).all() and np.isfinite(high).all():
        yerr = np.vstack([value - low, high - value]).clip(min=0)
    else:
        std = rows["mean_per_class_accuracy_std"].to_numpy(dtype=float)
        yerr = np.where(np.isfinite(std), std, 0.0) if np.isfinite(std).any() else None
    axes_method(x, value, yerr=yerr, **style)
    below, above = (yerr, yerr) if yerr is None or yerr.ndim == 1 else (yerr[0], yerr[1])
    if below is None:
        return value, value
    return value - below, value + above


def accuracy_range(low: list[float], high: list[float]) -> tuple[float, float]:
    """An accuracy axis fitted to the values drawn (error bars included) with a 5% margin,
    within [0, 1]; [0, 1] when nothing is drawn."""
    if not low:
        return 0.0, 1.0
    bottom, top = float(np.min(low)), float(np.max(high))
    margin = max(0.05 * (top - bottom), 0.01)
    return max(0.0, bottom - margin), min(1.0, top + margin)


def _error_description(summary: pd.DataFrame) -> str:
    if summary["ci_low"].notna().any():
        return "bars: 95% intervals"
    return transfer_summary.split_description(summary)


def transfer_by_layer_figure(
    results: pd.DataFrame,
    comparisons: pd.DataFrame | None = None,
    *,
    dataset: str,
    source_model: str,
) -> Figure:
    """Test mean per-class accuracy of each layer alone (95% intervals, or the standard
    deviation over repetitions, as error bars), with the full network's, the FNE's and the best
    selection's (chosen by cross-validated score) drawn across."""
    summary = transfer_summary.summarise(results, comparisons)
    layers = summary[(summary["embedding"] == "layer") & summary["selection"].isna()]
    layers = layers[layers["mean_per_class_accuracy"].notna()]
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
        _with_error(
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
        ("best_dks", transfer_summary.chosen_rows(results, summary)["best_selection"], ":"),
    ]
    for key, row, style in levels:
        if row is None:
            continue
        if key == "best_dks":
            label = f"best selection: {transfer_summary.selection_label(row)}"
        else:
            label = transfer_summary.EMBEDDING_LONG_LABELS[key]
        axes.axhline(
            float(row["mean_per_class_accuracy"]),
            color=WHOLE_COLOURS[key],
            linestyle=style,
            linewidth=1.6,
            label=f"{label}: {row['mean_per_class_accuracy']:.3f}",
        )
    axes.set_ylim(0, 1)
    axes.set_xlabel("layer")
    axes.set_ylabel("test mean per-class accuracy")
    # Below the layer names, placed by the layout: inside the axes it would hide the levels it
    # names, at a fixed offset it would cover long or many layer names.
    figure.legend(loc="outside lower center", fontsize=8, ncol=2)
    axes.set_title(
        f"Transfer - mean per-class accuracy per layer, {dataset} on {source_model}\n"
        f"({transfer_summary.split_description(summary)}; {_error_description(summary)})",
        fontsize=10,
    )
    return fit_titles(figure)


def transfer_curve_figure(
    results: pd.DataFrame,
    comparisons: pd.DataFrame | None = None,
    *,
    dataset: str,
    source_model: str,
) -> Figure:
    """Test mean per-class accuracy against the share of features kept (log axis): DKS-ranked
    against ANOVA-F and random selections (the mean of its draws) of the same sizes, from the
    full network (solid) and the FNE (dashed)."""
    summary = transfer_summary.summarise(results, comparisons)
    curves = summary[summary["selection"].notna()]
    figure = new_figure(9, 6)
    axes = figure.subplots()
    percents, low, high = [], [], []
    for embedding in ("full_network", "fne"):
        for selection in transfer_summary.SELECTIONS:
            rows = curves[
                (curves["embedding"] == embedding) & (curves["selection"] == selection)
            ].sort_values("fraction")
            rows = rows[rows["mean_per_class_accuracy"].notna()]
            if rows.empty:
                continue
            percent = 100 * rows["fraction"].to_numpy(dtype=float)
            percents.extend(percent)
            extent = _with_error(
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
            low.extend(extent[0])
            high.extend(extent[1])
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
    axes.set_ylabel("test mean per-class accuracy")
    axes.set_title(
        f"Transfer - mean per-class accuracy against features kept, {dataset} on "
        f"{source_model}\n({transfer_summary.split_description(summary)}; "
        f"{_error_description(summary)})",
        fontsize=10,
    )
    return fit_titles(figure)
