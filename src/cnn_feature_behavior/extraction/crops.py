"""Image decoding and the paper's crop geometry, in numpy and PIL only.

An image is decoded to RGB uint8 whatever its mode, its shorter side is resized to `resize`
(upscaling small images), and square `crop` x `crop` crops are cut:
- 10 crops: top-left, top-right, bottom-left, bottom-right, centre, then the horizontal mirror of
  each, in that order;
- 1 crop: the centre.
The centre crop starts at ((H - crop) // 2, (W - crop) // 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

CROP_COUNTS = (1, 10)
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_BACKGROUND = (255, 255, 255)  # transparent pixels are shown on white, as viewers do


def load_rgb(path: Path) -> np.ndarray:
    """Decode an image file to an RGB uint8 array (H, W, 3), upright as its EXIF says.

    Greyscale, palette, CMYK, YCbCr and the like are converted by PIL; transparency is composited
    on white; 16/32-bit integer images are scaled from 0..65535 and float images clipped to 0..255.
    """
    with Image.open(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        return to_rgb_array(image)


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """An RGB uint8 array (H, W, 3) from a decoded PIL image of any mode."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64) / 257.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "F":
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def resize_shorter_side(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (bilinear) so that the shorter side is `size`, keeping the aspect ratio."""
    height, width = image.shape[:2]
    if min(height, width) == 0:
        raise ValueError("cannot resize an empty image")
    scale = size / min(height, width)
    new_height = size if height <= width else round(height * scale)
    new_width = size if width <= height else round(width * scale)
    if (new_height, new_width) == (height, width):
        return image
    resized = Image.fromarray(image).resize((new_width, new_height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def crop_origins(height: int, width: int, crop: int) -> list[tuple[int, int]]:
    """(top, left) of the four corner crops and the centre crop, in that order."""
    if height < crop or width < crop:
        raise ValueError(f"a {height}x{width} image is smaller than the {crop}x{crop} crop")
    bottom, right = height - crop, width - crop
    return [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]


def crops_of(image: np.ndarray, crop: int, n_crops: int) -> np.ndarray:
    """The image's crops (n_crops, crop, crop, 3): 10 (corners, centre, mirrors) or 1 (centre)."""
    if n_crops not in CROP_COUNTS:
        raise ValueError(f"crops must be one of {CROP_COUNTS}, got {n_crops}")
    origins = crop_origins(image.shape[0], image.shape[1], crop)
    if n_crops == 1:
        origins = origins[4:]
    views = [image[top : top + crop, left : left + crop] for top, left in origins]
    if n_crops == 10:
        views += [view[:, ::-1] for view in views]
    return np.stack(views)


def image_crops(path: Path, resize: int, crop: int, n_crops: int) -> np.ndarray:
    """Decode, resize the shorter side to `resize`, and cut the crops of one image file."""
    if crop > resize:
        raise ValueError(f"crop {crop} is larger than the resized shorter side {resize}")
    return crops_of(resize_shorter_side(load_rgb(path), resize), crop, n_crops)
