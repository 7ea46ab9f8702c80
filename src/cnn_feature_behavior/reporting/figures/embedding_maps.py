"""The 2-D maps of the embeddings, points coloured by class."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cnn_feature_behavior.reporting import transfer_summary

from .common import _require_columns, fit_titles, new_figure

# Above this many classes a map's legend would hide the points: a note says so instead.
MAP_LEGEND_MAX_CLASSES = 20


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
    return fit_titles(figure)
