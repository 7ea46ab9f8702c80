"""The contact sheet of similar images: each query beside its most similar dataset images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cnn_feature_behavior.extraction.crops import decode_rgb
from cnn_feature_behavior.reporting.figures.common import _require_columns, new_figure

THUMBNAIL = 160  # pixels a side, enough to recognise an image at 1.3 inches a tile
TILE_INCHES = 1.35


def thumbnail(path: Path) -> np.ndarray | None:
    """The image shrunk to THUMBNAIL pixels a side at most, or None where it cannot be read."""
    try:
        image = decode_rgb(Path(path))
    except Exception:  # noqa: BLE001 - the sheet shows what is unreadable instead of failing
        return None
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    return np.asarray(image)


def _tile(axes: Axes, path: Path, label: str, colour: str) -> None:
    pixels = thumbnail(path)
    if pixels is None:
        axes.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=7)
    else:
        axes.imshow(pixels)
    axes.set_title(label, fontsize=6.5, color=colour)
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_edgecolor(colour)


def contact_sheet_figure(similar: pd.DataFrame, *, max_queries: int, title: str) -> Figure:
    """One row per query (the first `max_queries`, in order): the query, then its neighbours by
    rank, each labelled with its rank, class and cosine (`similar_images`' rows)."""
    _require_columns(similar, ("query", "rank", "path", "class", "similarity"), "similar_images")
    queries = list(pd.unique(similar["query"]))
    shown = queries[:max_queries]
    k = int(similar["rank"].max()) if len(similar) else 0
    figure = new_figure(TILE_INCHES * (k + 1), TILE_INCHES * 1.15 * max(len(shown), 1) + 0.4)
    note = f" (the first {len(shown)} of {len(queries)} queries; all in the CSV)"
    figure.suptitle(title + (note if len(shown) < len(queries) else ""), fontsize=9)
    if not shown:
        return figure
    grid = figure.subplots(len(shown), k + 1, squeeze=False)
    for row, query in zip(grid, shown):
        _tile(row[0], Path(query), f"query: {Path(query).name[:28]}", "black")
        neighbours = similar[similar["query"] == query].sort_values("rank")
        for axes, (_, hit) in zip(row[1:], neighbours.iterrows()):
            label = f"{int(hit['rank'])}. {str(hit['class'])[:18]}, cos {hit['similarity']:.2f}"
            _tile(axes, Path(str(hit["path"])), label, "tab:blue")
        for axes in row[1 + len(neighbours) :]:
            axes.set_axis_off()
    return figure
