"""The top-feature figures (the paper's Figures 2, 3, 4 and 7): for a class, sample images, then
its presence features and its absence features, each as a 3 x 3 mosaic of the reference-pool
patches that activate it most (found by `extraction.top_patches`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from cnn_feature_behavior.extraction.top_patches import (
    PATCHES_PER_FEATURE,
    FeatureRef,
    TopPatches,
)
from cnn_feature_behavior.reporting.figures.common import fit_titles

logger = logging.getLogger(__name__)


def patch_mosaic(
    patches: Sequence[np.ndarray], grid: int = 3, tile: int = 64, gap: int = 3
) -> np.ndarray:
    """`grid` x `grid` patches on white, each scaled to fit a `tile`-pixel square with its
    aspect ratio kept (a field clipped at the image's edge is not square); missing tiles stay
    white."""
    if len(patches) > grid * grid:
        raise ValueError(f"{len(patches)} patches do not fit a {grid}x{grid} grid")
    side = grid * tile + (grid + 1) * gap
    mosaic = np.full((side, side, 3), 255, dtype=np.uint8)
    for i, patch in enumerate(patches):
        row, col = divmod(i, grid)
        height, width = patch.shape[:2]
        scale = tile / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # Small fields (3 pixels for conv1_1) are enlarged without smoothing so the pixels show.
        small = max(height, width) < tile
        resample = Image.Resampling.NEAREST if small else Image.Resampling.BILINEAR
        resized = np.asarray(Image.fromarray(patch).resize(size, resample))
        top = gap + row * (tile + gap) + (tile - size[1]) // 2
        left = gap + col * (tile + gap) + (tile - size[0]) // 2
        mosaic[top : top + size[1], left : left + size[0]] = resized
    return mosaic


@dataclass(frozen=True)
class FeatureTile:
    """One feature as drawn: its name, DKS for the class, patch mosaic, and whether it is fc."""

    feature: str
    dks: float
    mosaic: np.ndarray
    whole_image: bool
    label: str = ""  # what the feature is, where known: an output logit's ImageNet class


def class_figure(
    class_name: str,
    presence: Sequence[FeatureTile],
    absence: Sequence[FeatureTile],
    samples: Sequence[np.ndarray],
    source_model: str,
    pool_description: str,
) -> Figure:
    """Sample images of the class, then its presence row and its absence row of feature tiles."""
    rows = [
        ("class samples", [(None, image) for image in samples]),
        ("presence\n(highest DKS)", [(tile, tile.mosaic) for tile in presence]),
        ("absence\n(lowest DKS)", [(tile, tile.mosaic) for tile in absence]),
    ]
    n_cols = max(1, *(len(items) for _, items in rows))
    figure = Figure(figsize=(2.3 * n_cols + 0.8, 8.6), layout="constrained")
    FigureCanvasAgg(figure)  # its own canvas, outside pyplot's registry
    axes = figure.subplots(len(rows), n_cols, squeeze=False)
    for row_axes, (label, items) in zip(axes, rows):
        for column, ax in enumerate(row_axes):
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= len(items):
                ax.set_axis_off()
                continue
            tile, image = items[column]
            ax.imshow(image)
            if tile is not None:
                named = f"\n'{tile.label}'" if tile.label else ""
                suffix = "\n(whole image)" if tile.whole_image else ""
                ax.set_title(f"{tile.feature}{named}\nDKS {tile.dks:+.4f}{suffix}", fontsize=9)
        row_axes[0].set_ylabel(label, fontsize=10)
    figure.suptitle(f"Top features of class '{class_name}' ({source_model})", fontsize=12)
    figure.supxlabel(
        f"Each feature: the {PATCHES_PER_FEATURE} reference images that activate it most, at most "
        "one patch per image, cropped to the part of its receptive field inside the image;\n"
        "head neurons (fully connected layers, a pooled top, the logits) have no spatial map, "
        "so the whole image is shown; an output logit is named by its ImageNet class. "
        f"Reference pool: {pool_description}.",
        fontsize=8,
    )
    return fit_titles(figure)


def top_feature_figures(
    found: TopPatches, file_names: Sequence[str], source_model: str
) -> dict[str, Figure]:
    """One figure per class of `found`, under its file name (`top_feature_file_names`, same order)."""
    mosaics = {
        feature: (patch_mosaic(p), whole_image)
        for feature, (p, whole_image) in found.patches.items()
    }

    def tiles(chosen: pd.Series) -> list[FeatureTile]:
        return [
            FeatureTile(
                f,
                float(v),
                *mosaics[FeatureRef.parse(f)],
                found.labels.get(FeatureRef.parse(f), ""),
            )
            for f, v in chosen.items()
        ]

    figures: dict[str, Figure] = {}
    for (name, (presence, absence)), file_name in zip(found.selections.items(), file_names):
        figures[file_name] = class_figure(
            name,
            tiles(presence),
            tiles(absence),
            found.samples[name],
            source_model,
            found.pool_description,
        )
    logger.info(
        "Top-feature figures for %d classes, %d features, from %s",
        len(figures),
        len(found.patches),
        found.pool_description,
    )
    return figures


def top_feature_file_names(classes: Sequence[str]) -> list[str]:
    """`top_features_<class>.png`, the class name reduced to characters safe in file names."""
    names = [f"top_features_{_file_safe(name)}.png" for name in classes]
    if len(set(names)) < len(names):
        clashes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"classes {list(classes)} give the same figure file names {clashes}")
    return names


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "class"
