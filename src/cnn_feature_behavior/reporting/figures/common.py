"""What every figure shares: a canvas outside pyplot, the study's colours and orders, and the
checks and notes the figures repeat.

Figures are built on the Agg canvas directly (no pyplot), so nothing accumulates in pyplot's
figure registry however many reports a process writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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


def _dataset_legend_label(name: str, mean_images: float) -> str:
    return f"{name} ({mean_images:,.0f} images/class)"


def _ordered_run_datasets(
    names: set[str], mean_images: Mapping[str, float], table_name: str
) -> list[str]:
    unknown = sorted(names - set(mean_images))
    if unknown:
        raise ValueError(f"{table_name}: no mean images per class for dataset(s) {unknown}")
    return dataset_order({name: mean_images[name] for name in names})


def _only_one_note(names: Sequence[str], what: str) -> str:
    return f" - only one {what} run so far: {names[0]}" if len(names) == 1 else ""
