"""The paper's figures, drawn from the study's tables: DataFrames in, matplotlib Figures out.

Figures are built on the Agg canvas directly (no pyplot), so nothing accumulates in pyplot's
figure registry however many reports a process writes. Every figure has a title, axis labels
and a legend, and stays readable for 1,000 classes (Figure 9) and 11 datasets (Figures 5, 8).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from cnn_feature_behavior.reporting import transfer_summary
from cnn_feature_behavior.statistics.dks import bin_indices

logger = logging.getLogger(__name__)

REAL_COLOUR = "black"
RANDOMISED_COLOUR = "tab:red"
# Figure 10 keeps the paper's colours: original labels blue, randomised labels green.
KEPT_REAL_COLOUR = "tab:blue"
KEPT_RANDOMISED_COLOUR = "tab:green"
# viridis' last tenth is too pale to read on white.
DATASET_COLOURMAP = "viridis"
DATASET_COLOURMAP_RANGE = (0.0, 0.88)
SIDE_LABELS = {"positive": "D+ (DKS > 0)", "negative": "D- (DKS < 0)", "both": "t+ and t- together"}
SIDE_MARKERS = {"positive": "^", "negative": "v"}
LAYER_GROUP_LABELS = {"conv": "all conv", "fc": "all fc", "all": "all layers"}
KEPT_TITLES = {
    "positive": "kept by t+ (DKS > t+)",
    "negative": "kept by t- (DKS < t-)",
    "both": "kept by either threshold",
}


def new_figure(width: float, height: float) -> Figure:
    """An empty figure on its own Agg canvas, outside pyplot's registry."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _require_columns(table: pd.DataFrame, columns: Sequence[str], table_name: str) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{table_name}: missing column(s) {missing}; it has {list(table.columns)}")


def _empty_panel(axes: Axes, message: str) -> None:
    axes.text(
        0.5,
        0.5,
        message,
        ha="center",
        va="center",
        transform=axes.transAxes,
        fontsize=10,
        color="dimgray",
        wrap=True,
    )


def dataset_order(mean_images_per_class: Mapping[str, float]) -> list[str]:
    """Datasets by mean images per class, ascending (the paper's order), ties by name."""
    return sorted(mean_images_per_class, key=lambda name: (mean_images_per_class[name], name))


def dataset_colours(ordered_datasets: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """One colour per dataset along a perceptually ordered colourmap, in the given order."""
    colourmap = colormaps[DATASET_COLOURMAP]
    low, high = DATASET_COLOURMAP_RANGE
    count = len(ordered_datasets)
    positions = np.linspace(low, high, count) if count > 1 else [low]
    return {name: colourmap(position) for name, position in zip(ordered_datasets, positions)}


def line_style_for(n_lines: int) -> tuple[float, float]:
    """(alpha, linewidth) keeping n overlapping lines readable: 1,000 make a translucent band."""
    alpha = float(np.clip(12.0 / max(n_lines, 1), 0.04, 0.9))
    linewidth = 1.2 if n_lines <= 20 else 0.8 if n_lines <= 200 else 0.5
    return alpha, linewidth


def layer_order(*tables: pd.DataFrame) -> list[str]:
    """Layer names in order of first appearance (the producers write them in network order)."""
    seen: dict[str, None] = {}
    for table in tables:
        for layer in table["layer"]:
            seen.setdefault(layer, None)
    return list(seen)


# --- Figure 1 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InnerOuterDistributions:
    """Inner-class and outer-class distributions of one feature, as in Figure 1."""

    bin_edges: np.ndarray  # of the histograms
    inner_percent: np.ndarray
    outer_percent: np.ndarray
    edf_points: np.ndarray  # where the EDFs are evaluated
    inner_edf: np.ndarray
    outer_edf: np.ndarray
    max_distance_index: int  # into edf_points
    signed_dks: float  # > 0: the class has higher values (its EDF lies below the others')


def inner_outer_distributions(
    values: np.ndarray, is_inner: np.ndarray, bins: int | None, histogram_bins: int = 100
) -> InnerOuterDistributions:
    """Histograms and EDFs of the class's values against the other classes' values.

    The EDFs follow `dks.signed_ks`, so the marked gap is the pair's stored DKS: with `bins`, the
    values are binned into equal-width bins over the feature's range and the EDFs compared at the
    bin edges; with None, compared at every observed value. Outer EDF minus inner EDF where they
    differ most, negative on ties. The histograms use `bins`, or `histogram_bins` when None.
    """
    values = np.asarray(values, dtype=np.float64)
    is_inner = np.asarray(is_inner, dtype=bool)
    if values.shape != is_inner.shape or values.ndim != 1:
        raise ValueError(
            f"values {values.shape} and class membership {is_inner.shape} must be equal-length 1-D"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"{int((~np.isfinite(values)).sum())} non-finite feature value(s)")
    if (bins is not None and bins < 1) or histogram_bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins} and {histogram_bins}")
    n_inner = int(is_inner.sum())
    n_outer = int((~is_inner).sum())
    if n_inner == 0 or n_outer == 0:
        raise ValueError(f"need images inside and outside the class, got {n_inner} and {n_outer}")
    low, high = np.array([values.min()]), np.array([values.max()])
    n_bins = bins or histogram_bins
    index = bin_indices(values[None, :], low, high, n_bins)[0]
    inner_counts = np.bincount(index[is_inner], minlength=n_bins)
    outer_counts = np.bincount(index[~is_inner], minlength=n_bins)
    # A constant feature has every value in bin 0: give the bins a unit span from the value.
    span = (high[0] - low[0]) or 1.0
    edges = low[0] + span * np.arange(n_bins + 1) / n_bins
    if bins is None:
        points = np.unique(values)
        inner_edf = np.searchsorted(np.sort(values[is_inner]), points, side="right") / n_inner
        outer_edf = np.searchsorted(np.sort(values[~is_inner]), points, side="right") / n_outer
    else:
        points = edges[1:]
        inner_edf = np.cumsum(inner_counts) / n_inner
        outer_edf = np.cumsum(outer_counts) / n_outer
    difference = outer_edf - inner_edf
    signed = difference.max() if difference.max() > -difference.min() else difference.min()
    return InnerOuterDistributions(
        bin_edges=edges,
        inner_percent=100.0 * inner_counts / n_inner,
        outer_percent=100.0 * outer_counts / n_outer,
        edf_points=points,
        inner_edf=inner_edf,
        outer_edf=outer_edf,
        max_distance_index=int(np.flatnonzero(difference == signed)[0]),
        signed_dks=float(signed),
    )


def select_feature_class_pair(
    dks: pd.DataFrame, feature: str | None = None, class_name: str | None = None
) -> tuple[str, str, float]:
    """The (feature, class, DKS) Figure 1 shows: the configured pair, else the largest |DKS|.

    Given only a feature (or only a class), the largest |DKS| over the other; ties go to the
    first in table order (features in manifest order, classes in label order).
    """
    classes = [column for column in dks.columns if column != "layer"]
    if feature is not None and feature not in dks.index:
        raise ValueError(
            f"Figure 1: feature {feature!r} is not in the dks table (e.g. {list(dks.index[:3])})"
        )
    if class_name is not None and class_name not in classes:
        raise ValueError(
            f"Figure 1: class {class_name!r} is not in the dks table "
            f"(classes: {classes[:10]}{' ...' if len(classes) > 10 else ''})"
        )
    values = dks[classes].astype(np.float64)
    if feature is not None:
        values = values.loc[[feature]]
    if class_name is not None:
        values = values[[class_name]]
    magnitudes = np.abs(values.to_numpy())
    if not np.isfinite(magnitudes).any():
        raise ValueError("Figure 1: the dks table has no finite value to choose from")
    row, column = np.unravel_index(np.nanargmax(magnitudes), magnitudes.shape)
    return str(values.index[row]), str(values.columns[column]), float(values.iat[row, column])


def feature_class_pair_figure(
    values: np.ndarray,
    is_inner: np.ndarray,
    *,
    feature: str,
    class_name: str,
    dataset: str,
    stored_dks: float,
    bins: int | None,
) -> Figure:
    """Figure 1: inner/outer histograms (left) and EDFs with the DKS point marked (right)."""
    distributions = inner_outer_distributions(values, is_inner, bins)
    n_inner = int(np.asarray(is_inner, dtype=bool).sum())
    n_outer = len(is_inner) - n_inner
    edges = distributions.bin_edges
    figure = new_figure(11, 4.2)
    histogram_axes, edf_axes = figure.subplots(1, 2)
    inner_label = f"class '{class_name}' ({n_inner} images)"
    outer_label = f"other classes ({n_outer} images)"
    histogram_axes.stairs(
        distributions.outer_percent,
        edges,
        color="tab:gray",
        fill=True,
        alpha=0.5,
        label=outer_label,
    )
    histogram_axes.stairs(
        distributions.inner_percent, edges, color="tab:orange", linewidth=1.5, label=inner_label
    )
    histogram_axes.set_xlabel(f"activation of {feature}")
    histogram_axes.set_ylabel("images (% of the group)")
    histogram_axes.set_title(f"Inner and outer class histograms ({len(edges) - 1} bins)")
    histogram_axes.legend(loc="best", fontsize=8)

    points = distributions.edf_points
    # A post-step draws its last value with no width: carry both EDFs a little past the last
    # point so that their final rise to 1 shows.
    tail = (points[-1] - points[0]) * 0.03 or 1.0
    drawn = np.append(points, points[-1] + tail)
    edf_axes.step(
        drawn,
        np.append(distributions.outer_edf, distributions.outer_edf[-1]),
        where="post",
        color="tab:gray",
        label=outer_label,
    )
    edf_axes.step(
        drawn,
        np.append(distributions.inner_edf, distributions.inner_edf[-1]),
        where="post",
        color="tab:orange",
        label=inner_label,
    )
    at = distributions.max_distance_index
    gap = (distributions.inner_edf[at], distributions.outer_edf[at])
    edf_axes.vlines(
        points[at],
        *gap,
        color="tab:red",
        linewidth=2.5,
        label=f"DKS = {distributions.signed_dks:+.3f} (largest EDF gap)",
    )
    edf_axes.plot([points[at]] * 2, gap, "o", color="tab:red", ms=4)
    edf_axes.set_xlabel(f"activation of {feature}")
    edf_axes.set_ylabel("empirical distribution function")
    edf_axes.set_ylim(-0.02, 1.02)
    edf_axes.set_title(
        "EDFs "
        + (f"on {bins} bins" if bins else "(exact)")
        + " and the Kolmogorov-Smirnov distance"
    )
    edf_axes.legend(loc="lower right", fontsize=8)
    figure.suptitle(
        f"Figure 1 - feature {feature}, class '{class_name}' of {dataset} "
        f"(stored DKS {stored_dks:+.3f})"
    )
    return figure


# --- Per dataset: Figures 6, 9, 10 and the davg curve --------------------------------------------


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
    return figure


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
    return figure


def layer_kept_figure(layer_kept: pd.DataFrame, *, dataset: str, source_model: str) -> Figure:
    """Figure 10: per layer, % of (feature, class) pairs kept by the thresholds, real vs randomised.

    Rows for groups of layers (`conv`, `fc`, `all`) follow the layers, past a dotted line.
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
    figure = new_figure(max(8.0, 0.45 * len(order) + 3), 3.0 * len(sides) + 0.6)
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
    panels[-1].set_xticks(
        positions, [LAYER_GROUP_LABELS.get(name, name) for name in order], rotation=60, ha="right"
    )
    panels[-1].set_xlabel("layer")
    figure.suptitle(
        f"Figure 10 - (feature, class) pairs kept per layer, {dataset} on {source_model}"
    )
    return figure


# --- Across datasets: Figures 5 and 8, the threshold fit ------------------------------------------


def _dataset_legend_label(name: str, mean_images: float) -> str:
    return f"{name} ({mean_images:,.0f} images/class)"


def _draw_layer_summary(
    axes: Axes,
    summary: pd.DataFrame,
    ordered_datasets: Sequence[str],
    colours: Mapping[str, tuple[float, ...]],
    mean_images: Mapping[str, float],
    legend: bool = True,
) -> None:
    """Modes and 68% intervals per layer and side, one dodge offset and colour per dataset."""
    layers = layer_order(summary)
    present = [name for name in ordered_datasets if name in set(summary["dataset"])]
    width = min(0.8, 0.07 * len(present) + 0.1)
    offsets = np.linspace(-width / 2, width / 2, len(present)) if len(present) > 1 else [0.0]
    marker_size = 5 if len(present) <= 4 else 3
    for name, offset in zip(present, offsets):
        rows = summary[summary["dataset"] == name]
        for side, marker in SIDE_MARKERS.items():
            side_rows = rows[rows["side"] == side].set_index("layer").reindex(layers)
            valid = side_rows["mode"].notna()
            x = np.arange(len(layers))[valid.to_numpy()] + offset
            mode = side_rows.loc[valid, "mode"].to_numpy(dtype=float)
            below = mode - side_rows.loc[valid, "low"].to_numpy(dtype=float)
            above = side_rows.loc[valid, "high"].to_numpy(dtype=float) - mode
            if (below < 0).any() or (above < 0).any():
                raise ValueError(
                    f"dks_layer_summary of {name}, side {side}: the 68% interval must enclose "
                    "the mode (low <= mode <= high)"
                )
            axes.errorbar(
                x,
                mode,
                yerr=[below, above],
                fmt=marker,
                color=colours[name],
                ms=marker_size,
                elinewidth=1.0,
                capsize=0,
                linestyle="none",
            )
    axes.axhline(0.0, color="gray", linewidth=0.6)
    axes.set_xticks(np.arange(len(layers)), layers, rotation=60, ha="right")
    axes.set_xlim(-0.6, len(layers) - 0.4)
    axes.set_ylim(-1, 1)
    axes.set_xlabel("layer")
    axes.set_ylabel("DKS: mode and 68% interval")
    handles = [
        Patch(color=colours[name], label=_dataset_legend_label(name, mean_images[name]))
        for name in present
    ]
    handles += [
        Line2D(
            [],
            [],
            marker=SIDE_MARKERS["positive"],
            color="black",
            linestyle="none",
            label="D+ mode",
        ),
        Line2D(
            [],
            [],
            marker=SIDE_MARKERS["negative"],
            color="black",
            linestyle="none",
            label="D- mode",
        ),
    ]
    if legend:
        axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)


def _drop_incomplete_summary_rows(summary: pd.DataFrame) -> pd.DataFrame:
    _require_columns(
        summary, ["dataset", "layer", "side", "mode", "low", "high"], "dks_layer_summary"
    )
    complete = summary[["mode", "low", "high"]].notna().all(axis=1)
    if not complete.all():
        logger.info(
            "Figure 5: %d (dataset, layer, side) rows have no DKS values on that side",
            int((~complete).sum()),
        )
    return summary[complete]


def interval_rule(summary: pd.DataFrame) -> str | None:
    """The one bar rule (`interval` column) of dks_layer_summary rows; None if not recorded.

    Bars drawn by different rules cannot share a figure: ValueError naming the datasets of each.
    """
    if "interval" not in summary.columns:
        return None
    recorded = summary["interval"].astype(object).where(summary["interval"].notna(), "unrecorded")
    rules = sorted(set(recorded))
    if len(rules) == 1:
        return None if rules[0] == "unrecorded" else rules[0]
    by_rule = "; ".join(
        f"{rule}: {', '.join(sorted(set(summary.loc[recorded == rule, 'dataset'])))}"
        for rule in rules
    )
    raise ValueError(
        f"dks_layer_summary: Figure 5 would mix bar rules ({by_rule}); run the dks pipeline "
        "again for those datasets with one dks.layer_summary.interval"
    )


def _rule_label(rule: str | None) -> str:
    return "DKS: mode and 68% bars" + (f" ({rule})" if rule else "")


def _ordered_run_datasets(
    names: set[str], mean_images: Mapping[str, float], table_name: str
) -> list[str]:
    unknown = sorted(names - set(mean_images))
    if unknown:
        raise ValueError(f"{table_name}: no mean images per class for dataset(s) {unknown}")
    return dataset_order({name: mean_images[name] for name in names})


def _only_one_note(names: Sequence[str], what: str) -> str:
    return f" - only one {what} run so far: {names[0]}" if len(names) == 1 else ""


def layer_summary_figure(
    summary: pd.DataFrame, mean_images: Mapping[str, float], *, source_model: str
) -> Figure:
    """Figure 5: per layer, D+ and D- modes with 68% intervals, datasets by images per class."""
    summary = _drop_incomplete_summary_rows(summary)
    ordered = _ordered_run_datasets(set(summary["dataset"]), mean_images, "dks_layer_summary")
    if not ordered:
        raise ValueError("dks_layer_summary: no dataset has a complete row")
    figure = new_figure(max(10.0, 0.55 * len(layer_order(summary)) + 4), 5.5)
    axes = figure.subplots()
    colours = dataset_colours(dataset_order(mean_images))
    _draw_layer_summary(axes, summary, ordered, colours, mean_images)
    axes.set_ylabel(_rule_label(interval_rule(summary)))
    axes.set_title(
        f"Figure 5 - DKS per layer on {source_model}{_only_one_note(ordered, 'dataset')}"
    )
    return figure


def layer_summary_by_model_figure(
    summaries: Mapping[str, pd.DataFrame], mean_images: Mapping[str, float]
) -> Figure:
    """Figure 5 for each source model side by side, each dataset in the same colour everywhere."""
    if len(summaries) < 2:
        raise ValueError(f"need at least two source models, got {sorted(summaries)}")
    cleaned = {model: _drop_incomplete_summary_rows(table) for model, table in summaries.items()}
    rule = interval_rule(pd.concat(cleaned.values(), ignore_index=True))
    all_datasets = set().union(*(set(table["dataset"]) for table in cleaned.values()))
    ordered = _ordered_run_datasets(all_datasets, mean_images, "dks_layer_summary")
    colours = dataset_colours(dataset_order(mean_images))
    n_layers = max(len(layer_order(table)) for table in cleaned.values())
    figure = new_figure(max(12.0, 0.5 * n_layers * len(cleaned) + 4), 5.5)
    panels = np.atleast_1d(figure.subplots(1, len(cleaned), sharey=True))
    for position, (axes, (model, table)) in enumerate(zip(panels, sorted(cleaned.items()))):
        # One legend, beside the last panel: the colours are the same in every panel.
        _draw_layer_summary(
            axes, table, ordered, colours, mean_images, legend=position == len(cleaned) - 1
        )
        axes.set_title(f"source model {model}")
        axes.set_ylabel(_rule_label(rule))
    figure.suptitle("Figure 5 by source model (the paper's Section 8)")
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
    return figure


# --- Transfer: accuracy per layer, accuracy against features kept, 2-D maps ----------------------

SELECTION_COLOURS = {
    "dks_count": "tab:blue",
    "dks_mean_abs": "tab:purple",
    "dks_cover": "tab:red",
    "random": "tab:gray",
}
CURVE_LINESTYLES = {"full_network": "-", "fne": "--"}
WHOLE_COLOURS = {"full_network": "tab:orange", "fne": "tab:green", "best_dks": "tab:blue"}
# Above this many classes a map's legend would hide the points: a note says so instead.
MAP_LEGEND_MAX_CLASSES = 20


def _with_std(axes_method, x, rows: pd.DataFrame, **style) -> None:
    std = rows["accuracy_std"].to_numpy(dtype=float)
    yerr = np.where(np.isfinite(std), std, 0.0) if np.isfinite(std).any() else None
    axes_method(x, rows["accuracy"].to_numpy(dtype=float), yerr=yerr, **style)


def transfer_by_layer_figure(results: pd.DataFrame, *, dataset: str, source_model: str) -> Figure:
    """Test accuracy of each layer alone (mean over repetitions, std as error bars), with the
    full network's, the FNE's and the best DKS-ranked selection's accuracies drawn across."""
    summary = transfer_summary.summarise(results)
    layers = summary[(summary["embedding"] == "layer") & summary["selection"].isna()]
    layers = layers[layers["accuracy"].notna()]
    figure = new_figure(max(9.0, 0.5 * len(layers) + 4.5), 6.0)
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
        axes.set_xticks(positions, layers["layer"].tolist(), rotation=60, ha="right")
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
    # Below the axes: inside, it would hide the levels it names.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), fontsize=8, ncol=2)
    axes.set_title(
        f"Transfer - accuracy per layer, {dataset} on {source_model}\n"
        f"({transfer_summary.split_description(summary)})",
        fontsize=10,
    )
    return figure


def transfer_curve_figure(results: pd.DataFrame, *, dataset: str, source_model: str) -> Figure:
    """Test accuracy against the share of features kept (log axis): DKS-ranked against random
    selections of the same sizes, from the full network (solid) and the FNE (dashed)."""
    summary = transfer_summary.summarise(results)
    curves = summary[summary["selection"].notna()]
    figure = new_figure(9, 5)
    axes = figure.subplots()
    percents = []
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
        axes.legend(loc="lower right", fontsize=8)
    else:
        _empty_panel(axes, "no feature selection was evaluated")
    axes.set_ylim(0, 1)
    axes.set_xlabel("features kept (share of the full network, log scale)")
    axes.set_ylabel("test accuracy")
    axes.set_title(
        f"Transfer - accuracy against features kept, {dataset} on {source_model}\n"
        f"({transfer_summary.split_description(summary)})",
        fontsize=10,
    )
    return figure


def class_colours(n_classes: int) -> np.ndarray:
    """(n, 4) RGBA colours, neighbouring labels far apart: tab10 / tab20 when they suffice, else
    hues stepped by the golden ratio with three saturation and three brightness levels."""
    if n_classes <= 10:
        return np.asarray(colormaps["tab10"].colors[:n_classes], dtype=float).reshape(-1, 3)
    if n_classes <= 20:
        return np.asarray(colormaps["tab20"].colors[:n_classes], dtype=float)
    k = np.arange(n_classes)
    hsv = np.c_[
        (k * 0.6180339887) % 1.0,
        np.array([0.95, 0.6, 0.85])[k % 3],
        np.array([0.95, 0.7, 0.5])[(k // 3) % 3],
    ]
    return hsv_to_rgb(hsv)


def embedding_maps_figure(maps: pd.DataFrame, *, dataset: str, source_model: str) -> Figure:
    """One t-SNE panel per embedding, each point an image coloured by its class; a legend for up
    to MAP_LEGEND_MAX_CLASSES classes, a note beyond."""
    _require_columns(maps, ["embedding", "label", "class_name", "x", "y"], "embedding_maps")
    if maps.empty:
        raise ValueError("embedding_maps: no rows")
    names = list(pd.unique(maps["embedding"]))
    classes = maps[["label", "class_name"]].drop_duplicates().sort_values("label")
    colours = class_colours(int(classes["label"].max()) + 1)
    n_columns = 2 if len(names) == 4 else min(len(names), 3)
    n_rows = int(np.ceil(len(names) / n_columns))
    figure = new_figure(4.6 * n_columns + 0.5, 4.4 * n_rows + 0.6)
    panels = np.atleast_1d(figure.subplots(n_rows, n_columns, squeeze=False)).ravel()
    n_points = int(maps.groupby("embedding").size().max())
    size = float(np.clip(6000.0 / n_points, 1.5, 16.0))
    for axes, name in zip(panels, names):
        rows = maps[maps["embedding"] == name]
        axes.scatter(
            rows["x"],
            rows["y"],
            c=colours[rows["label"].to_numpy()],
            s=size,
            linewidths=0,
            alpha=0.85,
            rasterized=True,
        )
        axes.set_title(
            f"{transfer_summary.EMBEDDING_LONG_LABELS.get(name, name)} ({len(rows):,} images)",
            fontsize=10,
        )
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_xlabel("t-SNE 1")
        axes.set_ylabel("t-SNE 2")
    for axes in panels[len(names) :]:
        axes.set_axis_off()
    if len(classes) <= MAP_LEGEND_MAX_CLASSES:
        handles = [
            Line2D([], [], marker="o", linestyle="none", color=colours[label], label=name)
            for label, name in classes.itertuples(index=False)
        ]
        figure.legend(handles=handles, loc="outside right center", fontsize=8, title="class")
        note = ""
    else:
        note = f"\n{len(classes)} classes, one colour each (too many to list in a legend)"
    figure.suptitle(
        f"2-D maps (t-SNE after PCA) of the embeddings, {dataset} on {source_model}{note}"
    )
    return figure
