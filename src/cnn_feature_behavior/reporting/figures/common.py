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
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath

from cnn_feature_behavior.extraction.layer_kinds import HEAD, LAYER_KIND_LABELS, SPATIAL

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
# Rows of layer_kept and dks_histograms that group layers rather than name one; manifests
# written before the spatial / head vocabulary grouped by conv / fc.
LAYER_GROUP_LABELS = {
    SPATIAL: f"all {LAYER_KIND_LABELS[SPATIAL]}",
    HEAD: f"all {LAYER_KIND_LABELS[HEAD]}",
    "conv": f"all {LAYER_KIND_LABELS[SPATIAL]}",
    "fc": f"all {LAYER_KIND_LABELS[HEAD]}",
    "all": "all layers",
}
# Layer axes: at most this many inches wide (wider PNGs shrink to illegible in a report page),
# and at most this many tick labels (beyond, every k-th layer is named).
MAX_FIGURE_WIDTH = 18.0
MAX_LAYER_LABELS = 150
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


def text_width(text: str, fontsize: float | str) -> float:
    """Width in inches of one line of text in Matplotlib's default font."""
    width, _, _ = TextToPath().get_text_width_height_descent(
        text, FontProperties(size=fontsize), ismath=False
    )
    return width / 72.0


def wrap_text(text: str, width: float, fontsize: float | str) -> str:
    """`text` broken at spaces into lines no wider than `width` inches (a single word longer
    than that keeps its own line); its own line breaks are kept."""
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and text_width(trial, fontsize) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return "\n".join(lines)


def fit_titles(figure: Figure) -> Figure:
    """The figure with its title, its caption (supxlabel) and its panels' titles wrapped to the
    width each has once laid out, so that long model and dataset names are never cut off at the
    figure's edge."""
    figure.draw_without_rendering()
    for text in (figure._suptitle, figure._supxlabel):
        if text is not None and text.get_text():
            text.set_text(wrap_text(text.get_text(), 0.96 * figure.get_figwidth(), text.get_size()))
    for axes in figure.axes:
        width = axes.get_position().width * figure.get_figwidth()
        for text in (axes.title, axes._left_title, axes._right_title):
            if text.get_text():
                text.set_text(wrap_text(text.get_text(), width, text.get_size()))
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


def layer_axis_width(n_layers: int, per_layer: float, extra: float, minimum: float) -> float:
    """Figure width for n layers along x: `per_layer` inches each, within [minimum, MAX]."""
    return float(min(MAX_FIGURE_WIDTH, max(minimum, per_layer * n_layers + extra)))


def set_layer_ticks(axes: Axes, layers: Sequence[str]) -> None:
    """Name the layers along x, readable at any count: smaller and upright beyond 40 layers,
    and every k-th name beyond MAX_LAYER_LABELS (the others keep an unlabelled tick)."""
    n = len(layers)
    step = int(np.ceil(n / MAX_LAYER_LABELS)) if n > MAX_LAYER_LABELS else 1
    labels = [name if i % step == 0 else "" for i, name in enumerate(layers)]
    if n <= 40:
        axes.set_xticks(np.arange(n), labels, rotation=60, ha="right")
        return
    axes.set_xticks(np.arange(n), labels, rotation=90, ha="center")
    axes.tick_params(axis="x", labelsize=6 if n <= 90 else 5, length=2)
