"""Figure 5: DKS per layer across datasets (modes and 68% bars), and per source model."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .common import (
    SIDE_MARKERS,
    _dataset_legend_label,
    _only_one_note,
    _ordered_run_datasets,
    _require_columns,
    dataset_colours,
    dataset_order,
    fit_titles,
    layer_axis_width,
    layer_order,
    new_figure,
    set_layer_ticks,
)

logger = logging.getLogger(__name__)

# Figure 5 by source model: panels side by side up to this many layers in all, else stacked.
SIDE_BY_SIDE_MAX_LAYERS = 40


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
    set_layer_ticks(axes, layers)
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


def layer_summary_figure(
    summary: pd.DataFrame, mean_images: Mapping[str, float], *, source_model: str
) -> Figure:
    """Figure 5: per layer, D+ and D- modes with 68% intervals, datasets by images per class."""
    summary = _drop_incomplete_summary_rows(summary)
    ordered = _ordered_run_datasets(set(summary["dataset"]), mean_images, "dks_layer_summary")
    if not ordered:
        raise ValueError("dks_layer_summary: no dataset has a complete row")
    figure = new_figure(layer_axis_width(len(layer_order(summary)), 0.55, 4, 10.0), 5.5)
    axes = figure.subplots()
    colours = dataset_colours(dataset_order(mean_images))
    _draw_layer_summary(axes, summary, ordered, colours, mean_images)
    axes.set_ylabel(_rule_label(interval_rule(summary)))
    axes.set_title(
        f"Figure 5 - DKS per layer on {source_model}{_only_one_note(ordered, 'dataset')}"
    )
    return fit_titles(figure)


def layer_summary_by_model_figure(
    summaries: Mapping[str, pd.DataFrame], mean_images: Mapping[str, float]
) -> Figure:
    """Figure 5 for each source model, each dataset in the same colour everywhere: side by side
    while the models have SIDE_BY_SIDE_MAX_LAYERS layers together, else one row per model."""
    if len(summaries) < 2:
        raise ValueError(f"need at least two source models, got {sorted(summaries)}")
    cleaned = {model: _drop_incomplete_summary_rows(table) for model, table in summaries.items()}
    rule = interval_rule(pd.concat(cleaned.values(), ignore_index=True))
    all_datasets = set().union(*(set(table["dataset"]) for table in cleaned.values()))
    ordered = _ordered_run_datasets(all_datasets, mean_images, "dks_layer_summary")
    colours = dataset_colours(dataset_order(mean_images))
    n_layers = [len(layer_order(table)) for table in cleaned.values()]
    if sum(n_layers) <= SIDE_BY_SIDE_MAX_LAYERS:
        figure = new_figure(max(12.0, 0.5 * sum(n_layers) + 4), 5.5)
        panels = np.atleast_1d(figure.subplots(1, len(cleaned), sharey=True))
    else:
        figure = new_figure(layer_axis_width(max(n_layers), 0.55, 4, 12.0), 4.6 * len(cleaned))
        panels = np.atleast_1d(figure.subplots(len(cleaned), 1, sharey=True))
    for position, (axes, (model, table)) in enumerate(zip(panels, sorted(cleaned.items()))):
        # One legend, beside the last panel: the colours are the same in every panel.
        _draw_layer_summary(
            axes, table, ordered, colours, mean_images, legend=position == len(cleaned) - 1
        )
        axes.set_title(f"source model {model} ({len(layer_order(table))} layers)")
        axes.set_ylabel(_rule_label(rule))
    figure.suptitle("Figure 5 by source model (the paper's Section 8)")
    return fit_titles(figure)
