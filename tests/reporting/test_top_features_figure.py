"""The top-features figure: patch mosaics and the class figure."""

from __future__ import annotations

import io

import numpy as np
from builders.figure_checks import clipped_texts
from PIL import Image

from cnn_feature_behavior.reporting.figures.top_features import (
    FeatureTile,
    class_figure,
    patch_mosaic,
)


def _rendered(figure) -> np.ndarray:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=50)
    return np.asarray(Image.open(buffer).convert("L"), dtype=float)


def test_mosaic_places_patches_and_enlarges_small_ones_without_smoothing():
    patch = np.zeros((3, 3, 3), dtype=np.uint8)
    patch[1, 1] = 255
    mosaic = patch_mosaic([patch, np.full((50, 50, 3), 7, np.uint8)], tile=30, gap=2)
    assert mosaic.shape == (3 * 30 + 4 * 2,) * 2 + (3,)
    first = mosaic[2:32, 2:32, 0]
    assert set(np.unique(first)) == {0, 255} and first[15, 15] == 255 and first[0, 0] == 0
    assert (mosaic[2:32, 34:64] == 7).all()
    assert (mosaic[34:, :] == 255).all()  # missing tiles stay white


def test_class_figure_renders_every_row_and_is_not_blank():
    rng = np.random.default_rng(3)
    tile = lambda name, value, fc=False: FeatureTile(  # noqa: E731
        name, value, patch_mosaic([rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)] * 9), fc
    )
    figure = class_figure(
        "cat",
        [tile("conv1_1/n3", 0.91), tile("fc7/n5", 0.8, True)],
        [tile("conv5_3/n1", -0.7)],
        [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)] * 3,
        "vgg16_imagenet",
        "the dataset",
    )
    assert figure.get_suptitle() == "Top features of class 'cat' (vgg16_imagenet)"
    titles = [ax.get_title() for ax in figure.axes]
    assert "conv1_1/n3\nDKS +0.9100" in titles and "fc7/n5\nDKS +0.8000\n(whole image)" in titles
    labels = [ax.get_ylabel() for ax in figure.axes if ax.get_ylabel()]
    assert labels == ["class samples", "presence\n(highest DKS)", "absence\n(lowest DKS)"]
    assert _rendered(figure).std() > 20


def test_a_clipped_field_keeps_its_shape_in_the_mosaic():
    """A field clipped at the image's edge (here 10 x 40 pixels) is scaled to fit its tile,
    centred on white, not stretched into a square."""
    mosaic = patch_mosaic([np.zeros((10, 40, 3), np.uint8)], grid=1, tile=40, gap=0)
    dark = np.argwhere(mosaic[..., 0] == 0)
    assert (dark[:, 0].min(), dark[:, 0].max()) == (15, 24)
    assert (dark[:, 1].min(), dark[:, 1].max()) == (0, 39)


def test_a_logit_tile_names_its_class():
    mosaic = patch_mosaic([np.zeros((9, 9, 3), np.uint8)])
    figure = class_figure(
        "cat",
        [FeatureTile("logits/n404", 0.8, mosaic, True, "airliner")],
        [FeatureTile("block7a_project_bn/n3", -0.6, mosaic, False)],
        [],
        "efficientnet_lite0_imagenet",
        "100 images from the dataset (../shared/datasets/caltech101-mini)",
    )
    titles = [ax.get_title() for ax in figure.axes]
    assert "logits/n404\n'airliner'\nDKS +0.8000\n(whole image)" in titles
    assert clipped_texts(figure) == []  # the caption below the tiles included
