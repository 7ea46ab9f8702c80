"""Checks that a drawn figure is readable: no text outside the canvas, no legend over tick
labels or titles, no panel without data."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

TOLERANCE = 1.0  # pixels


def _drawn_tick_labels(axes: Axes) -> list[Text]:
    labels = []
    for axis in (axes.xaxis, axes.yaxis):
        for tick in axis._update_ticks():  # the ticks the next draw shows
            labels += [label for label in (tick.label1, tick.label2) if label.get_visible()]
    return [label for label in labels if label.get_text()]


def _texts(figure: Figure) -> list[Text]:
    texts = list(figure.texts)
    for name in ("_suptitle", "_supxlabel", "_supylabel"):
        if getattr(figure, name, None) is not None:
            texts.append(getattr(figure, name))
    for axes in figure.axes:
        if not axes.get_visible():
            continue
        texts += [axes.title, axes._left_title, axes._right_title, *axes.texts]
        if axes.axison:  # an axes drawn without its axis shows no axis label nor tick
            texts += [axes.xaxis.label, axes.yaxis.label, *_drawn_tick_labels(axes)]
    for legend in _legends(figure):
        texts += [*legend.get_texts(), legend.get_title()]
    unique = {id(text): text for text in texts}.values()
    return [text for text in unique if text.get_visible() and text.get_text().strip()]


def _legends(figure: Figure) -> list[Legend]:
    legends = list(figure.legends)
    legends += [axes.get_legend() for axes in figure.axes if axes.get_legend() is not None]
    return legends


def clipped_texts(figure: Figure) -> list[str]:
    """The texts that reach outside the figure (cut off in the PNG)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    bounds = figure.bbox
    clipped = []
    for text in _texts(figure):
        box = text.get_window_extent(renderer)
        if (
            box.x0 < bounds.x0 - TOLERANCE
            or box.x1 > bounds.x1 + TOLERANCE
            or box.y0 < bounds.y0 - TOLERANCE
            or box.y1 > bounds.y1 + TOLERANCE
        ):
            clipped.append(text.get_text())
    return clipped


def legends_over_labels(figure: Figure) -> list[str]:
    """Tick labels, axis labels and titles that a legend covers."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    covered = []
    for legend in _legends(figure):
        frame = legend.get_window_extent(renderer)
        own = set(map(id, [*legend.get_texts(), legend.get_title()]))
        for text in _texts(figure):
            if id(text) in own:
                continue
            if Bbox.intersection(frame, text.get_window_extent(renderer)) is not None:
                box = Bbox.intersection(frame, text.get_window_extent(renderer))
                if box.width > TOLERANCE and box.height > TOLERANCE:
                    covered.append(text.get_text())
    return covered


def empty_panels(figure: Figure) -> list[str]:
    """Titles of the visible panels that show no data (reference lines across an axis, such as
    axhline's and axvline's, are not data)."""
    empty = []
    for axes in figure.axes:
        if not axes.get_visible() or not axes.axison:
            continue
        data = (
            len(axes.collections)
            + len(axes.images)
            + len(axes.patches)
            + sum(
                len(line.get_xdata()) > 0 and line.get_transform().contains_branch(axes.transData)
                for line in axes.get_lines()
            )
        )
        if not data:
            empty.append(axes.get_title() or "(untitled panel)")
    return empty


def unreadable(figure: Figure) -> dict[str, list[str]]:
    """Every readability problem found, by kind; empty when the figure is readable."""
    problems = {
        "clipped": clipped_texts(figure),
        "legend over text": legends_over_labels(figure),
        "empty panel": empty_panels(figure),
    }
    return {kind: found for kind, found in problems.items() if found}
