"""Image decoding and the paper's crop geometry, in numpy and PIL only.

An image is decoded to RGB uint8 whatever its mode, its shorter side is resized to `resize`
(upscaling small images), and square `crop` x `crop` crops are cut:
- 10 crops: top-left, top-right, bottom-left, bottom-right, centre, then the horizontal mirror of
  each, in that order;
- 1 crop: the centre, resampled from the source region it covers alone (`centre_crop`: values
  within a level or two of cutting it from the whole resized image, at a fraction of the work).
A network with a fixed input size other than `crop` gets crops of its size, the resize scaled
alike (`crop_geometry`).
The centre crop starts at ((H - crop) // 2, (W - crop) // 2).

How pixel values become 8-bit levels, decided by the PIL mode and, where the mode does not fix
the scale, by the range of values found (documented in docs/datasets.md, "Image modes"):
- 8-bit modes (`1`, `L`, `P`, `RGB`, `CMYK`, `YCbCr`, ...) are converted by PIL.
- `I;16`, `I;16L`, `I;16B`, `I;16N` (16-bit greyscale, e.g. 16-bit PNG and TIFF) scale
  0..65535 to 0..255 (divide by 257, round).
- `I` (32-bit signed integer greyscale): values within 0..255 are taken as 8-bit levels, else
  within 0..65535 as 16-bit levels (divide by 257); anything else is rejected.
- `F` (32-bit float greyscale): values within [0, 1] are scaled by 255, else within [0, 255]
  taken as levels (rounded); negative, above 255, NaN or infinite values are rejected.
- Transparency (an alpha band, a palette's transparent entries, or a transparency colour in
  `info['transparency']` for `L`, `RGB`, `I`, `I;16*` and `F`) is composited on white.
A rejection is an `ImageValuesError` (a ValueError) naming the file and the range found; ingestion's
decode check calls the same function, so such files land in `ingestion_rejects` with that reason.
An all-dark image of a wider mode (an `F` image within [0, 1] meant as 0..255 levels, an `I` image
within 0..255 meant as 16-bit levels) cannot be told apart by its values and follows the rule.

Size limits and the errors that name a file's problem live in `ingestion.image_checks`, which
ingestion and extraction both use; `load_rgb` and `resize_shorter_side` refuse anything above its
built-in `CEILINGS` whatever the settings, so no path through the code allocates more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from cnn_feature_behavior.ingestion.image_checks import (
    CEILINGS,
    ImageLimits,
    ImageSizeError,
    ImageValuesError,
)

CROP_COUNTS = (1, 10)
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
_GREY_MODES_BY_VALUE = _SIXTEEN_BIT_MODES | {"I", "F"}
_BACKGROUND = (255, 255, 255)  # transparent pixels are shown on white, as viewers do


def load_rgb(path: Path, limits: ImageLimits = CEILINGS) -> np.ndarray:
    """Decode an image file to an RGB uint8 array (H, W, 3), upright as its EXIF says.

    Every mode is read by the module's rule; raises ImageValuesError (naming `path`) for an image
    whose values have no 8-bit reading, ImageSizeError for one with more pixels than `limits`
    allow (checked on the header, before decoding).
    """
    return np.asarray(decode_rgb(path, limits), dtype=np.uint8)


def decode_rgb(path: Path, limits: ImageLimits = CEILINGS) -> Image.Image:
    """`load_rgb`'s image as an RGB PIL image: cropping and resizing it needs no array copy."""
    with Image.open(path) as image:  # closes the file only: the decoded image stays usable
        problem = limits.problem(image.width, image.height, resize=None)
        if problem:
            raise ImageSizeError(path, problem)
        image.load()
        # In place: the image is this function's own, and the copy exif_transpose otherwise
        # makes of every image (oriented or not) is a tenth of an image's decoding time.
        ImageOps.exif_transpose(image, in_place=True)
        return to_rgb_image(image, source=path)


def upright_rgb(image: Image.Image, source: object = "image") -> np.ndarray:
    """The RGB uint8 array (H, W, 3) of a loaded PIL image, turned upright as its EXIF says."""
    return to_rgb_array(ImageOps.exif_transpose(image), source=source)


def to_rgb_array(image: Image.Image, source: object = "image") -> np.ndarray:
    """An RGB uint8 array (H, W, 3) from a decoded PIL image of any mode, by the module's rule.

    `source` (the file) names the image in an ImageValuesError.
    """
    return np.asarray(to_rgb_image(image, source), dtype=np.uint8)


def to_rgb_image(image: Image.Image, source: object = "image") -> Image.Image:
    """`to_rgb_array`'s pixels as an RGB PIL image: an RGB image itself, not a copy."""
    if image.mode in _GREY_MODES_BY_VALUE:
        values = np.asarray(image)
        grey = _grey_levels(values, image.mode, source)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        transparent = _transparent_pixels(values, image.info.get("transparency"))
        if transparent is not None:
            rgb[transparent] = _BACKGROUND
        return Image.fromarray(rgb)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info
    ):
        # PIL turns a palette's transparent entries and an L or RGB transparency colour into alpha.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        image = Image.alpha_composite(background, rgba)
    return image if image.mode == "RGB" else image.convert("RGB")


def _grey_levels(values: np.ndarray, mode: str, source: object) -> np.ndarray:
    """The 8-bit levels (H, W) of a 16-bit, 32-bit integer or float greyscale image."""
    if values.size == 0:
        return np.zeros(values.shape, np.uint8)
    if mode == "F":
        if not np.isfinite(values).all():
            raise ImageValuesError(
                source, "float image (mode F) holds NaN or infinite values; it has no 8-bit reading"
            )
        low, high = float(values.min()), float(values.max())
        if low >= 0 and high <= 1:
            scale = 255.0
        elif low >= 0 and high <= 255:
            scale = 1.0
        else:
            raise ImageValuesError(
                source,
                f"float image (mode F) with values in [{low:g}, {high:g}]; only [0, 1] (scaled "
                "by 255) or [0, 255] (8-bit levels) have an 8-bit reading",
            )
        return np.rint(values.astype(np.float64) * scale).astype(np.uint8)
    low, high = int(values.min()), int(values.max())
    if mode == "I" and low >= 0 and high <= 255:
        return values.astype(np.uint8)
    if low >= 0 and high <= 65535:
        return np.rint(values.astype(np.float64) / 257.0).astype(np.uint8)
    raise ImageValuesError(
        source,
        f"32-bit integer image (mode {mode}) with values in [{low}, {high}]; only 0..255 (8-bit) "
        "or 0..65535 (16-bit levels) have an 8-bit reading",
    )


def _transparent_pixels(values: np.ndarray, transparency: object) -> np.ndarray | None:
    """The pixels equal to a greyscale image's transparency colour, or None when it has none."""
    if transparency is None or isinstance(transparency, (tuple, list, bytes)):
        return None
    mask = values == transparency
    return mask if mask.any() else None


def resize_shorter_side(
    image: np.ndarray, size: int, limits: ImageLimits = CEILINGS, source: object = "image"
) -> np.ndarray:
    """Resize (bilinear) so that the shorter side is `size`, keeping the aspect ratio.

    Raises ImageSizeError (naming `source`) before allocating when the aspect ratio or the
    resized pixel count is above `limits`.
    """
    height, width = image.shape[:2]
    if resized_size(width, height, size, limits, source) == (width, height):
        return image
    return np.asarray(resized_image(Image.fromarray(image), size, limits, source), dtype=np.uint8)


def resized_image(
    image: Image.Image, size: int, limits: ImageLimits = CEILINGS, source: object = "image"
) -> Image.Image:
    """`resize_shorter_side` on a PIL image (the same pixels), without a round trip through an
    array; the image itself where it already has the size."""
    new_size = resized_size(*image.size, size, limits, source)
    return image if new_size == image.size else image.resize(new_size, Image.Resampling.BILINEAR)


def resized_size(
    width: int, height: int, size: int, limits: ImageLimits = CEILINGS, source: object = "image"
) -> tuple[int, int]:
    """(width, height) once the shorter side is `size`; ImageSizeError (naming `source`) when the
    image is beyond `limits` at that size."""
    if min(height, width) == 0:
        raise ValueError("cannot resize an empty image")
    problem = limits.problem(width, height, size)
    if problem:
        raise ImageSizeError(source, problem)
    scale = size / min(height, width)
    new_height = size if height <= width else round(height * scale)
    new_width = size if width <= height else round(width * scale)
    return new_width, new_height


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


def crop_geometry(input_size: int | None, resize: int, crop: int) -> tuple[int, int]:
    """(resize, crop) for a network taking `input_size`-pixel square inputs (None: any size).

    The crop becomes the input size and the shorter side keeps the configured resize / crop ratio,
    rounded (256 / 224: InceptionV3's 299 crops are cut from a 342 shorter side); a network that
    takes any size, or the configured one, keeps the configured geometry.
    """
    if input_size is None or input_size == crop:
        return resize, crop
    return round(resize * input_size / crop), int(input_size)


def image_crops(
    path: Path, resize: int, crop: int, n_crops: int, limits: ImageLimits = CEILINGS
) -> np.ndarray:
    """Decode, resize the shorter side to `resize`, and cut the crops of one image file."""
    if crop > resize:
        raise ValueError(f"crop {crop} is larger than the resized shorter side {resize}")
    return crops_of_image(decode_rgb(path, limits), resize, crop, n_crops, limits, source=path)


def crops_of_image(
    image: Image.Image,
    resize: int,
    crop: int,
    n_crops: int,
    limits: ImageLimits = CEILINGS,
    source: object = "image",
) -> np.ndarray:
    """The crops (n_crops, crop, crop, 3) of a decoded RGB image whose shorter side is resized to
    `resize`: 1 crop by `centre_crop`, 10 cut from the whole resized image."""
    if n_crops == 1:
        return centre_crop(image, resize, crop, limits, source)[None]
    resized = resized_image(image, resize, limits, source)
    return crops_of(np.asarray(resized, dtype=np.uint8), crop, n_crops)


def centre_crop(
    image: Image.Image,
    resize: int,
    crop: int,
    limits: ImageLimits = CEILINGS,
    source: object = "image",
) -> np.ndarray:
    """The centre crop (crop, crop, 3) of the RGB image resized to shorter side `resize`.

    Only the crop's region is resampled (a third of the whole resize's work and more): the same
    bilinear filter over the same source pixels as cutting it from `resize_shorter_side`'s image,
    rounded differently (PIL takes the region's corners in float32 and may run its two passes, each
    rounded to 8 bits, in the other order), so a value may differ by a level or two.
    """
    width, height = image.size
    new_width, new_height = resized_size(width, height, resize, limits, source)
    top, left = crop_origins(new_height, new_width, crop)[4]
    if (new_width, new_height) == (width, height):
        region = image.crop((left, top, left + crop, top + crop))
    else:
        # The crop's corners in source pixels, at the whole resize's scale on each axis.
        box = (
            left * width / new_width,
            top * height / new_height,
            (left + crop) * width / new_width,
            (top + crop) * height / new_height,
        )
        region = image.resize((crop, crop), Image.Resampling.BILINEAR, box=box)
    return np.asarray(region, dtype=np.uint8)
