"""Transfer figures: mean per-class accuracy per layer and against the features kept, with the
95% intervals of transfer_comparisons where given (else the standard deviation over the
repetitions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cnn_feature_behavior.reporting import transfer_summary

from .common import _empty_panel, layer_axis_width, layer_order, new_figure, set_layer_ticks

SELECTION_COLOURS = {
    "dks_count": "tab:blue",
    "dks_mean_abs": "tab:purple",
    "dks_cover": "tab:red",
    "anova_f": "tab:olive",
    "random": "tab:gray",
}
CURVE_LINESTYLES = {"full_network": "-", "fne": "--"}
WHOLE_COLOURS = {"full_network": "tab:orange", "fne": "tab:green", "best_dks": "tab:blue"}


def _with_error(axes_method, x, rows: pd.DataFrame, **style) -> None:
    """Mean per-class accuracy with its interval (or standard deviation) as error bars."""
    value = rows["mean_per_class_accuracy"].to_numpy(dtype=float)
    low, high = rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float)
    if np.isfinite(low).all() and np.isfinite(high).all():
        yerr = np.vstack([value - low, high - value]).clip(min=0)
    else:
        std = rows["mean_per_class_accuracy_std"].to_numpy(dtype=float)
        yerr = np.where(np.isfinite(std), std, 0.0) if np.isfinite(std).any() else None
    axes_method(x, value, yerr=yerr, **style)


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
    # Below the axes: inside, it would hide the levels it names.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), fontsize=8, ncol=2)
    axes.set_title(
        f"Transfer - mean per-class accuracy per layer, {dataset} on {source_model}\n"
        f"({transfer_summary.split_description(summary)}; {_error_description(summary)})",
        fontsize=10,
    )
    return figure


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
    figure = new_figure(9, 5)
    axes = figure.subplots()
    percents = []
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
            _with_error(
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
        axes.legend(loc="lower right", fontsize=8)
    else:
        _empty_panel(axes, "no feature selection was evaluated")
    axes.set_ylim(0, 1)
    axes.set_xlabel("features kept (share of the full network, log scale)")
    axes.set_ylabel("test mean per-class accuracy")
    axes.set_title(
        f"Transfer - mean per-class accuracy against features kept, {dataset} on "
        f"{source_model}\n({transfer_summary.split_description(summary)}; "
        f"{_error_description(summary)})",
        fontsize=10,
    )
    return figure
