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

logger = logging.getLogger(__name__)


def patch_mosaic(
    patches: Sequence[np.ndarray], grid: int = 3, tile: int = 64, gap: int = 3
) -> np.ndarray:
    """`grid` x `grid` patches, each resized to `tile` pixels, on white; missing tiles stay white."""
    if len(patches) > grid * grid:
        raise ValueError(f"{len(patches)} patches do not fit a {grid}x{grid} grid")
    side = grid * tile + (grid + 1) * gap
    mosaic = np.full((side, side, 3), 255, dtype=np.uint8)
    for i, patch in enumerate(patches):
        row, col = divmod(i, grid)
        # Small fields (3 pixels for conv1_1) are enlarged without smoothing so the pixels show.
        resample = Image.Resampling.NEAREST if patch.shape[0] < tile else Image.Resampling.BILINEAR
        resized = np.asarray(Image.fromarray(patch).resize((tile, tile), resample))
        top, left = gap + row * (tile + gap), gap + col * (tile + gap)
        mosaic[top : top + tile, left : left + tile] = resized
    return mosaic


@dataclass(frozen=True)
class FeatureTile:
    """One feature as drawn: its name, DKS for the class, patch mosaic, and whether it is fc."""

    feature: str
    dks: float
    mosaic: np.ndarray
    whole_image: bool


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
                suffix = "\n(whole image)" if tile.whole_image else ""
                ax.set_title(f"{tile.feature}\nDKS {tile.dks:+.4f}{suffix}", fontsize=9)
        row_axes[0].set_ylabel(label, fontsize=10)
    figure.suptitle(f"Top features of class '{class_name}' ({source_model})", fontsize=12)
    figure.supxlabel(
        f"Each feature: the {PATCHES_PER_FEATURE} reference images that activate it most, at most "
        "one patch per image, cropped to its receptive field (checkerboard: field outside the "
        f"image;\nfc neurons have no spatial map, so the whole image is shown). Reference pool: "
        f"{pool_description}.",
        fontsize=8,
    )
    return figure


def top_feature_figures(
    found: TopPatches, file_names: Sequence[str], source_model: str
) -> dict[str, Figure]:
    """One figure per class of `found`, under its file name (`top_feature_file_names`, same order)."""
    mosaics = {
        feature: (patch_mosaic(p), whole_image)
        for feature, (p, whole_image) in found.patches.items()
    }

    def tiles(chosen: pd.Series) -> list[FeatureTile]:
        return [FeatureTile(f, float(v), *mosaics[FeatureRef.parse(f)]) for f, v in chosen.items()]

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
