"""The checks an image file must pass before it enters a study: its size and its decoding.

Ingestion runs them on every image it indexes (`find_decode_problems`, in threads) and lists each
failure in `ingestion_rejects` with the reason; extraction refuses anything above the built-in
`CEILINGS` whatever the settings. The errors name the file.

Size limits (`ImageLimits`, documented in docs/datasets.md, "Image size limits"): resizing the
shorter side to `resize` has no bound on the longer side, so a 1 x 100,000 image (a 200-byte PNG)
would ask for a 25,600,000 x 256 image. An image is refused, before its pixels are decoded or
resized, when its pixel count as stored, its aspect ratio (longer side / shorter side), its
pixel count once resized or the bytes it takes in memory to decode and turn into RGB
(`decoded_bytes`: PIL keeps 1, 2 or 4 bytes per pixel by mode) is above the limits. Ingestion
checks the configured limits (`ingestion.image_limits`) and lists such an image in
`ingestion_rejects` with the reason; extraction's `load_rgb` and `resize_shorter_side`
(`extraction.crops`) refuse anything above the built-in `CEILINGS` whatever the settings, so no
path through the code allocates more. PIL's own decompression-bomb limit
(`Image.MAX_IMAGE_PIXELS`, which it checks when a file is opened) is set here explicitly to the
ceiling rather than left at PIL's default.

Memory: no check copies a whole image beyond its decoding. Greyscale images read by value (16-bit,
32-bit integer, float) are checked and turned into 8-bit levels a band of rows at a time
(`grey_levels`), never through a float64 copy of the whole image; ingestion's threads decode only
as many images at once as `MemoryBudget` (`ingestion.decode_memory_mb`) holds. The limits keep one
image, checked or extracted, under about 0.4 GB at the defaults (docs/reliability.md).

Links: an image is opened only where it resolves inside raw_dir (`outside_raw_dir`), at ingestion
(the readers' rule) and wherever extraction or a report opens it later.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Greyscale modes whose values decide their 8-bit reading (`grey_levels`).
GREY_MODES_BY_VALUE = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
# Pixels read at once when a greyscale image is checked or converted by value.
BAND_PIXELS = 1 << 20


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
    # `decoded_bytes`: 384 MiB keeps every RGB image within max_decoded_pixels (4 bytes a pixel).
    max_decoded_bytes: int = 402_653_184

    def problem(
        self, width: int, height: int, resize: int | None, mode: str | None = None
    ) -> str | None:
        """Why a `width` x `height` image (of PIL `mode`, when known) is beyond the limits, or
        None; `resize` None: not resized (the resized pixel count is not checked)."""
        if width * height > self.max_decoded_pixels:
            return (
                f"image too large: {width} x {height} = {width * height:,} pixels, above the "
                f"limit {self.max_decoded_pixels:,} (ingestion.image_limits.max_decoded_pixels)"
            )
        if mode is not None and decoded_bytes(width, height, mode) > self.max_decoded_bytes:
            return (
                f"image too large to decode: {width} x {height} in mode {mode} takes "
                f"{decoded_bytes(width, height, mode):,} bytes decoded and as RGB, above the "
                f"limit {self.max_decoded_bytes:,} (ingestion.image_limits.max_decoded_bytes)"
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
    max_decoded_pixels=178_956_970,
    max_aspect_ratio=1_000.0,
    max_resized_pixels=67_108_864,
    # Not above the default: no setting lets one image cost more than about 0.4 GB.
    max_decoded_bytes=402_653_184,
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


def stored_bytes_per_pixel(mode: str) -> int:
    """Bytes PIL keeps per pixel of a decoded image of `mode`: 1 (`1`, `L`, `P`), 2 (16-bit
    greyscale), 4 (32-bit greyscale, and every mode of several bands, RGB included)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def decoded_bytes(width: int, height: int, mode: str) -> int:
    """Memory an image takes to decode and turn into RGB (`extraction.crops.to_rgb_image`):
    PIL's decoded image, its RGB copy unless it is RGB already (4 bytes a pixel), and for a
    greyscale image read by value its 8-bit levels (1 byte a pixel)."""
    per_pixel = stored_bytes_per_pixel(mode)
    per_pixel += 0 if mode == "RGB" else 4
    per_pixel += 1 if mode in GREY_MODES_BY_VALUE else 0
    return width * height * per_pixel


@dataclass(frozen=True)
class SizeCheck:
    """The limits an image is checked against, at the extraction's resize."""

    resize: int = 256
    limits: ImageLimits = ImageLimits()

    def problem(self, width: int, height: int, mode: str | None = None) -> str | None:
        return self.limits.problem(width, height, self.resize, mode)


DEFAULT_SIZE_CHECK = SizeCheck()


class MemoryBudget:
    """Bytes that threads may hold at once: each reserves its image's decoded size first and
    waits while the others hold too much (one image larger than the whole budget runs alone)."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"a memory budget must be positive, got {capacity}")
        self.capacity = capacity
        self.held = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, amount: int) -> Iterator[None]:
        amount = max(0, min(int(amount), self.capacity))
        with self._changed:
            self._changed.wait_for(lambda: self.held + amount <= self.capacity)
            self.held += amount
        try:
            yield
        finally:
            with self._changed:
                self.held -= amount
                self._changed.notify_all()


# ingestion.decode_memory_mb: 1 GiB, the decoding of two images at the default limits at once.
DEFAULT_DECODE_MEMORY = 1 << 30


@dataclass(frozen=True)
class DecodeThreads:
    """Ingestion's decoding threads (`ingestion.decode_workers`, None: Python's default) and the
    bytes of decoded images they may hold at once (`ingestion.decode_memory_mb`)."""

    workers: int | None = None
    memory_bytes: int = DEFAULT_DECODE_MEMORY


DEFAULT_DECODE_THREADS = DecodeThreads()
# Decoding at 1/8 scale (JPEG DCT scaling) still reads every byte of the entropy-coded data, so
# truncation is caught, at a third of the cost of a full decode.
_DECODE_SCALE = 8


def decode_problem(
    path: Path,
    resize: int = SizeCheck.resize,
    limits: ImageLimits = SizeCheck.limits,
    budget: MemoryBudget | None = None,
) -> str | None:
    """Why the file at `path` cannot be used as an image, or None when it decodes.

    A file whose values have no 8-bit reading by extraction's rule (`grey_levels`: e.g. a float
    image outside [0, 1] and [0, 255]) is rejected with the reason extraction would give. An
    image beyond `limits` (its size as stored, its aspect ratio, its size once its shorter side
    is `resize`, its decoded bytes) is rejected from its header, before any pixel is decoded.
    The decoding waits for its size in `budget`, when given.
    """
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as image:
            size_problem = limits.problem(image.width, image.height, resize, image.mode)
            if size_problem:
                return size_problem
            image.verify()
        # verify() checks structure only (it passes truncated JPEGs); load() decodes the pixels.
        with Image.open(path) as image:
            image.draft(
                "RGB", (max(1, image.width // _DECODE_SCALE), max(1, image.height // _DECODE_SCALE))
            )
            size = image.width * image.height * stored_bytes_per_pixel(image.mode)
            with budget.reserve(size) if budget is not None else _nothing():
                image.load()
                if image.mode in GREY_MODES_BY_VALUE:
                    grey_rule(image, source=path)
    except ImageValuesError as error:
        return error.reason
    except Image.DecompressionBombError as error:
        return f"image too large (PIL's decompression-bomb limit): {error}"
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        return f"does not decode as an image: {type(error).__name__}: {error}"
    return None


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def find_decode_problems(
    raw_dir: Path,
    paths: Iterable[str],
    workers: int | None = None,
    size_check: SizeCheck = DEFAULT_SIZE_CHECK,
    memory_bytes: int = DEFAULT_DECODE_MEMORY,
) -> dict[str, str]:
    """{path: reason} for each path (relative to raw_dir) that does not decode, checked by
    threads that decode at most `memory_bytes` of images at once."""
    paths = list(paths)
    budget = MemoryBudget(memory_bytes)

    def problem(path: Path) -> str | None:
        return decode_problem(path, size_check.resize, size_check.limits, budget)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = pool.map(problem, (raw_dir / p for p in paths))
        return {path: problem for path, problem in zip(paths, problems) if problem}


# ---------------------------------------------------------------------------------------------
# Greyscale images read by value (the rule of docs/datasets.md, "Image modes")


def value_bands(image: Image.Image) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, values) of successive bands of about BAND_PIXELS pixels of a loaded image."""
    rows = max(1, BAND_PIXELS // max(1, image.width))
    for top in range(0, image.height, rows):
        bottom = min(image.height, top + rows)
        yield top, np.asarray(image.crop((0, top, image.width, bottom)))


def grey_rule(image: Image.Image, source: object = "image") -> Callable[[np.ndarray], np.ndarray]:
    """How the values of a loaded 16-bit, 32-bit integer or float greyscale image become 8-bit
    levels, once every value is known to have a reading; ImageValuesError naming `source` else.

    `I;16*`: 0..65535 divided by 257 and rounded. `I`: values within 0..255 are levels, else
    within 0..65535 as 16-bit levels. `F`: within [0, 1] scaled by 255, else within [0, 255] taken
    as levels (rounded); negative, above 255, NaN or infinite values have no reading.
    """
    mode = image.mode
    low = high = None
    for _, values in value_bands(image):
        if values.size == 0:
            continue
        if mode == "F" and not np.isfinite(values).all():
            raise ImageValuesError(
                source, "float image (mode F) holds NaN or infinite values; it has no 8-bit reading"
            )
        band_low, band_high = values.min(), values.max()
        low = band_low if low is None else min(low, band_low)
        high = band_high if high is None else max(high, band_high)
    if low is None:
        return lambda values: np.zeros(values.shape, np.uint8)
    if mode == "F":
        low, high = float(low), float(high)
        if low >= 0 and high <= 1:
            return _scaled(255.0)
        if low >= 0 and high <= 255:
            return _scaled(1.0)
        raise ImageValuesError(
            source,
            f"float image (mode F) with values in [{low:g}, {high:g}]; only [0, 1] (scaled "
            "by 255) or [0, 255] (8-bit levels) have an 8-bit reading",
        )
    low, high = int(low), int(high)
    if mode == "I" and low >= 0 and high <= 255:
        return lambda values: values.astype(np.uint8)
    if low >= 0 and high <= 65535:
        return _scaled(1.0 / 257.0, divide_by=257.0)
    raise ImageValuesError(
        source,
        f"32-bit integer image (mode {mode}) with values in [{low}, {high}]; only 0..255 (8-bit) "
        "or 0..65535 (16-bit levels) have an 8-bit reading",
    )


def _scaled(factor: float, divide_by: float | None = None) -> Callable[[np.ndarray], np.ndarray]:
    # float64 a band at a time: the same rounding as on the whole image, a small copy.
    if divide_by is not None:
        return lambda values: np.rint(values.astype(np.float64) / divide_by).astype(np.uint8)
    return lambda values: np.rint(values.astype(np.float64) * factor).astype(np.uint8)


def grey_levels(image: Image.Image, source: object = "image") -> np.ndarray:
    """The 8-bit levels (H, W) of a loaded greyscale image read by value (`grey_rule`), its
    transparency colour (`info['transparency']`) shown as white; a band of rows at a time."""
    rule = grey_rule(image, source)
    levels = np.empty((image.height, image.width), np.uint8)
    transparency = image.info.get("transparency")
    if isinstance(transparency, (tuple, list, bytes)):
        transparency = None
    for top, values in value_bands(image):
        band = levels[top : top + len(values)]
        band[...] = rule(values)
        if transparency is not None:
            band[values == transparency] = 255
    return levels


# ---------------------------------------------------------------------------------------------
# Links


def outside_raw_dir(path: Path | str, raw_dir: Path | str) -> str | None:
    """Why `path` must not be opened as an image of raw_dir (it resolves outside raw_dir: a
    symbolic link out of it, on the way or at the end), or None."""
    target = Path(os.path.realpath(path))
    if target.is_relative_to(Path(os.path.realpath(raw_dir))):
        return None
    shown = os.fsencode(str(target)).decode("utf-8", "backslashreplace")
    return (
        f"symbolic link to {shown}, outside raw_dir (links are followed only when they stay "
        "inside raw_dir)"
    )
