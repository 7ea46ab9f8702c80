"""How the thresholds are chosen and what they keep: Figure 9, davg(x), Figure 10, and t+ / t-
against images per class."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .common import (
    KEPT_RANDOMISED_COLOUR,
    KEPT_REAL_COLOUR,
    KEPT_TITLES,
    LAYER_GROUP_LABELS,
    RANDOMISED_COLOUR,
    REAL_COLOUR,
    SIDE_LABELS,
    _only_one_note,
    _require_columns,
    fit_titles,
    layer_axis_width,
    layer_order,
    line_style_for,
    new_figure,
    set_layer_ticks,
)


def class_counts_figure(
    class_counts: pd.DataFrame, *, t_plus: float, t_minus: float, dataset: str, source_model: str
) -> Figure:
    """Figure 9: per class, features beyond x; real labels black, randomised red, t dashed."""
    _require_columns(class_counts, ["side", "x", "labels", "class", "count"], "class_counts")
    figure = new_figure(12, 4.8)
    panels = dict(zip(("positive", "negative"), figure.subplots(1, 2)))
    thresholds = {"positive": t_plus, "negative": t_minus}
    for side, axes in panels.items():
        side_rows = class_counts[class_counts["side"] == side]
        n_classes = 0
        for labels, colour in (("randomised", RANDOMISED_COLOUR), ("real", REAL_COLOUR)):
            rows = side_rows[side_rows["labels"] == labels]
            if rows.empty:
                raise ValueError(f"class_counts: no rows for side={side!r}, labels={labels!r}")
            curves = rows.pivot_table(index="x", columns="class", values="count", aggfunc="first")
            curves = curves.sort_index()
            n_classes = max(n_classes, curves.shape[1])
            alpha, linewidth = line_style_for(curves.shape[1])
            x = curves.index.to_numpy(dtype=float)
            segments = [
                np.column_stack([x, curves[column].to_numpy(dtype=float)])
                for column in curves.columns
            ]
            axes.add_collection(
                LineCollection(segments, colors=colour, alpha=alpha, linewidths=linewidth)
            )
        axes.autoscale()
        axes.set_ylim(bottom=0)
        axes.set_xlim((0, 1) if side == "positive" else (-1, 0))
        threshold = thresholds[side]
        name = "t+" if side == "positive" else "t-"
        axes.axvline(threshold, color="tab:blue", linestyle="--", linewidth=1.2)
        comparison = ">" if side == "positive" else "<"
        axes.set_xlabel("x (DKS)")
        axes.set_ylabel(f"features with DKS {comparison} x")
        axes.set_title(f"{SIDE_LABELS[side]}: {n_classes} classes")
        axes.legend(
            handles=[
                Line2D([], [], color=REAL_COLOUR, label="real labels (one line per class)"),
                Line2D([], [], color=RANDOMISED_COLOUR, label="randomised labels"),
                Line2D(
                    [], [], color="tab:blue", linestyle="--", label=f"{name} = {threshold:+.3f}"
                ),
            ],
            loc="upper right" if side == "positive" else "upper left",
            fontsize=8,
        )
    figure.suptitle(f"Figure 9 - features per class beyond x, {dataset} on {source_model}")
    return fit_titles(figure)


def davg_figure(
    davg_curve: pd.DataFrame, *, t_plus: float, t_minus: float, dataset: str, source_model: str
) -> Figure:
    """davg(x), the gap between real and randomised mean counts whose maxima are t+ and t-."""
    _require_columns(davg_curve, ["side", "x", "davg"], "davg_curve")
    figure = new_figure(8, 4)
    axes = figure.subplots()
    for side, colour in (("positive", "tab:blue"), ("negative", "tab:purple")):
        rows = davg_curve[davg_curve["side"] == side].sort_values("x")
        if rows.empty:
            raise ValueError(f"davg_curve: no rows for side={side!r}")
        axes.plot(rows["x"], rows["davg"], color=colour, label=f"davg(x), {SIDE_LABELS[side]}")
    axes.axvline(t_plus, color="tab:blue", linestyle="--", label=f"t+ = {t_plus:+.3f}")
    axes.axvline(t_minus, color="tab:purple", linestyle="--", label=f"t- = {t_minus:+.3f}")
    axes.axvline(0.0, color="gray", linewidth=0.6)
    axes.set_xlim(-1, 1)
    axes.set_xlabel("x (DKS)")
    axes.set_ylabel("davg(x): mean features per class, real - randomised")
    axes.legend(loc="upper right", fontsize=8)
    axes.set_title(f"Threshold selection (Equation 4), {dataset} on {source_model}")
    return fit_titles(figure)


def layer_kept_figure(layer_kept: pd.DataFrame, *, dataset: str, source_model: str) -> Figure:
    """Figure 10: per layer, % of (feature, class) pairs kept by the thresholds, real vs randomised.

    Rows for groups of layers (`spatial`, `head` or, as written before, `conv`, `fc`; `all`)
    follow the layers, past a dotted line.
    """
    _require_columns(
        layer_kept, ["layer", "side", "percent_real", "percent_randomised"], "layer_kept"
    )
    sides = [side for side in ("positive", "negative", "both") if side in set(layer_kept["side"])]
    if not sides:
        raise ValueError(f"layer_kept: no known side in {sorted(set(layer_kept['side']))}")
    names = layer_order(layer_kept)
    layers = [name for name in names if name not in LAYER_GROUP_LABELS]
    groups = [name for name in names if name in LAYER_GROUP_LABELS]
    order = layers + groups
    figure = new_figure(layer_axis_width(len(order), 0.45, 3, 8.0), 3.0 * len(sides) + 0.6)
    panels = np.atleast_1d(figure.subplots(len(sides), 1, sharex=True))
    positions = np.arange(len(order))
    for axes, side in zip(panels, sides):
        rows = layer_kept[layer_kept["side"] == side].set_index("layer").reindex(order)
        axes.bar(
            positions - 0.2,
            rows["percent_real"],
            width=0.4,
            color=KEPT_REAL_COLOUR,
            label="real labels",
        )
        axes.bar(
            positions + 0.2,
            rows["percent_randomised"],
            width=0.4,
            color=KEPT_RANDOMISED_COLOUR,
            label="randomised labels",
        )
        if layers and groups:
            axes.axvline(len(layers) - 0.5, color="gray", linestyle=":", linewidth=1)
        axes.set_ylabel("pairs kept (%)")
        axes.set_title(KEPT_TITLES[side])
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    set_layer_ticks(panels[-1], [LAYER_GROUP_LABELS.get(name, name) for name in order])
    panels[-1].set_xlabel("layer")
    figure.suptitle(
        f"Figure 10 - (feature, class) pairs kept per layer, {dataset} on {source_model}"
    )
    return fit_titles(figure)


def threshold_fit_figure(
    thresholds: pd.DataFrame, fit: pd.DataFrame, *, source_model: str
) -> Figure:
    """t+ and t- against mean images per class (log axis), with t = a + b ln(n) and its R^2."""
    _require_columns(
        thresholds, ["dataset", "t_plus", "t_minus", "mean_images_per_class"], "thresholds"
    )
    _require_columns(fit, ["threshold", "a", "b", "r_squared", "n_datasets"], "threshold_fit")
    figure = new_figure(8, 4.8)
    axes = figure.subplots()
    images = thresholds["mean_images_per_class"].to_numpy(dtype=float)
    grid = np.geomspace(images.min() * 0.8, images.max() * 1.25, 200)
    fits = fit.set_index("threshold")
    for column, colour, name in (("t_plus", "tab:blue", "t+"), ("t_minus", "tab:purple", "t-")):
        axes.plot(images, thresholds[column], "o", color=colour, label=f"{name} per dataset")
        if column not in fits.index:
            raise ValueError(f"threshold_fit: no row for threshold {column!r}")
        row = fits.loc[column]
        if np.isfinite([row["a"], row["b"]]).all():
            r_squared = f"{row['r_squared']:.2f}" if np.isfinite(row["r_squared"]) else "n/a"
            axes.plot(
                grid,
                row["a"] + row["b"] * np.log(grid),
                "--",
                color=colour,
                label=f"{name} = {row['a']:.3f} {row['b']:+.3f} ln(n), "
                f"R\u00b2 = {r_squared} ({int(row['n_datasets'])} datasets)",
            )
        else:
            axes.plot(
                [],
                [],
                "--",
                color=colour,
                label=f"{name}: no fit ({int(row['n_datasets'])} dataset(s))",
            )
    for name, n, t_plus, t_minus in thresholds[
        ["dataset", "mean_images_per_class", "t_plus", "t_minus"]
    ].itertuples(index=False):
        axes.annotate(name, (n, t_plus), textcoords="offset points", xytext=(4, 4), fontsize=7)
        axes.annotate(name, (n, t_minus), textcoords="offset points", xytext=(4, -10), fontsize=7)
    axes.set_xscale("log")
    axes.axhline(0.0, color="gray", linewidth=0.6)
    axes.set_xlabel("mean images per class n (log scale)")
    axes.set_ylabel("threshold (DKS)")
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    names = list(thresholds["dataset"])
    axes.set_title(
        f"Thresholds against images per class, {source_model}{_only_one_note(names, 'dataset')}"
    )
    return fit_titles(figure)
