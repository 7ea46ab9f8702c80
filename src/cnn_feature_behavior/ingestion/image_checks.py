"""The checks an image file must pass before it enters a study: its size and its decoding.

Ingestion runs them on every image it indexes (`find_decode_problems`, in threads) and lists each
failure in `ingestion_rejects` with the reason; extraction refuses anything above the built-in
`CEILINGS` whatever the settings. The errors name the file.

Size limits (`ImageLimits`, documented in docs/datasets.md, "Image size limits"): resizing the
shorter side to `resize` has no bound on the longer side, so a 1 x 100,000 image (a 200-byte PNG)
would ask for a 25,600,000 x 256 image. An image is refused, before its pixels are decoded or
resized, when its pixel count as stored, its aspect ratio (longer side / shorter side) or its
pixel count once resized is above the limits. Ingestion checks the configured limits
(`ingestion.image_limits`) and lists such an image in `ingestion_rejects` with the reason;
extraction's `load_rgb` and `resize_shorter_side`
(`extraction.crops`) refuse anything above the built-in `CEILINGS` whatever the settings, so no
path through the code allocates more. PIL's own decompression-bomb limit
(`Image.MAX_IMAGE_PIXELS`, which it checks when a file is opened) is set here explicitly to the
ceiling rather than left at PIL's default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image


class ImageValuesError(ValueError):
    """An image whose pixel values have no 8-bit reading under the rule (see the module doc)."""

    def __init__(self, source: object, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class ImageSizeError(ImageValuesError):
    """An image whose size, as stored or once resized, is above the limits (see the module doc)."""


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on an image's size, checked on its header before any pixel is decoded."""

    # width x height as stored; PIL's own default (about 0.25 GiB of RGB), made explicit.
    max_decoded_pixels: int = 89_478_485
    # longer side / shorter side; wider panoramas than 20:1 are not photographs of one object.
    max_aspect_ratio: float = 20.0
    # width x height once the shorter side is `resize`: 16 Mpixel, 48 MiB of RGB.
    max_resized_pixels: int = 16_777_216

    def problem(self, width: int, height: int, resize: int | None) -> str | None:
        """Why a `width` x `height` image is beyond the limits, or None; `resize` None: not
        resized (only the stored pixel count is checked)."""
        if width * height > self.max_decoded_pixels:
            return (
                f"image too large: {width} x {height} = {width * height:,} pixels, above the "
                f"limit {self.max_decoded_pixels:,} (ingestion.image_limits.max_decoded_pixels)"
            )
        if resize is None:
            return None
        short, long = sorted((width, height))
        if short == 0:
            return f"empty image ({width} x {height})"
        if long > self.max_aspect_ratio * short:
            ratio = long / short
            shown = f"{ratio:.0f}" if ratio >= 100 else f"{ratio:.3g}"
            return (
                f"aspect ratio {shown}:1 ({width} x {height}) is above the limit "
                f"{self.max_aspect_ratio:g} (ingestion.image_limits.max_aspect_ratio)"
            )
        resized = resize * round(long * resize / short)
        if resized > self.max_resized_pixels:
            return (
                f"image too large once resized: {width} x {height} with its shorter side at "
                f"{resize} is {resized:,} pixels once resized, above the limit "
                f"{self.max_resized_pixels:,} (ingestion.image_limits.max_resized_pixels)"
            )
        return None


# What no setting can exceed: extraction refuses anything above these whatever was configured.
CEILINGS = ImageLimits(
    max_decoded_pixels=178_956_970, max_aspect_ratio=1_000.0, max_resized_pixels=67_108_864
)
# PIL warns above this and raises DecompressionBombError above twice this, when a file is opened.
Image.MAX_IMAGE_PIXELS = CEILINGS.max_decoded_pixels


def image_limits_from_params(settings: Mapping[str, Any] | None) -> ImageLimits:
    """`ingestion.image_limits` as ImageLimits: the defaults for keys not given, each value a
    positive number no larger than the ceiling."""
    settings = dict(settings or {})
    known = {f.name for f in fields(ImageLimits)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(
            f"ingestion.image_limits: unknown key(s) {unknown}; known: {sorted(known)} "
            "(conf/base/parameters_ingestion.yml)"
        )
    for key, value in settings.items():
        ceiling = getattr(CEILINGS, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(
                f"ingestion.image_limits.{key} must be a positive number, got {value!r}"
            )
        if value > ceiling:
            raise ValueError(
                f"ingestion.image_limits.{key} = {value:,} is above the built-in ceiling "
                f"{ceiling:,} (ingestion.image_checks.CEILINGS), which extraction never exceeds"
            )
    return ImageLimits(**settings)


@dataclass(frozen=True)
class SizeCheck:
    """The limits an image is checked against, at the extraction's resize."""

    resize: int = 256
    limits: ImageLimits = ImageLimits()

    def problem(self, width: int, height: int) -> str | None:
        return self.limits.problem(width, height, self.resize)


DEFAULT_SIZE_CHECK = SizeCheck()


# Decoding at 1/8 scale (JPEG DCT scaling) still reads every byte of the entropy-coded data, so
# truncation is caught, at a third of the cost of a full decode.
_DECODE_SCALE = 8


def decode_problem(
    path: Path, resize: int = SizeCheck.resize, limits: ImageLimits = SizeCheck.limits
) -> str | None:
    """Why the file at `path` cannot be used as an image, or None when it decodes.

    The pixels are read by extraction's own rule (`extraction.crops.upright_rgb`), so a file whose
    values have no 8-bit reading (e.g. a float image outside [0, 1] and [0, 255]) is rejected here
    with the reason extraction would give. An image beyond `limits` (its size as stored, its
    aspect ratio, its size once its shorter side is `resize`) is rejected from its header, before
    any pixel is decoded.
    """
    # Extraction's module imports this one (the limits): its pixel rule is imported when used.
    from cnn_feature_behavior.extraction.crops import upright_rgb

    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as image:
            size_problem = limits.problem(image.width, image.height, resize)
            if size_problem:
                return size_problem
            image.verify()
        # verify() checks structure only (it passes truncated JPEGs); load() decodes the pixels.
        with Image.open(path) as image:
            image.draft(
                "RGB", (max(1, image.width // _DECODE_SCALE), max(1, image.height // _DECODE_SCALE))
            )
            image.load()
            upright_rgb(image, source=path)
    except ImageValuesError as error:
        return error.reason
    except Image.DecompressionBombError as error:
        return f"image too large (PIL's decompression-bomb limit): {error}"
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        return f"does not decode as an image: {type(error).__name__}: {error}"
    return None


def find_decode_problems(
    raw_dir: Path,
    paths: Iterable[str],
    workers: int | None = None,
    size_check: SizeCheck = DEFAULT_SIZE_CHECK,
) -> dict[str, str]:
    """{path: reason} for each path (relative to raw_dir) that does not decode, checked by threads."""
    paths = list(paths)

    def problem(path: Path) -> str | None:
        return decode_problem(path, size_check.resize, size_check.limits)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = pool.map(problem, (raw_dir / p for p in paths))
        return {path: problem for path, problem in zip(paths, problems) if problem}
