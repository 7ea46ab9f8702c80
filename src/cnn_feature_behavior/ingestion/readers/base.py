"""What every dataset reader shares: the scan it returns, its error, and the file helpers.

A reader turns a dataset's files under `raw_dir` into a `LayoutScan`: the labelled images present
on disk, the labelled images missing from it, and the files found that the layout cannot use.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import scipy.io

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)
TRAIN, TEST = "train", "test"


class LayoutError(ValueError):
    """raw_dir does not hold the dataset's expected layout."""

    def __init__(self, dataset: str, path: Path | str, problem: str):
        super().__init__(
            f"{dataset}: {problem}: {path}\n"
            f"Expected layout of raw_dir for '{dataset}':\n{layout_tree(dataset)}"
        )


@dataclass(frozen=True)
class LabelledImage:
    path: str  # POSIX, relative to raw_dir
    class_name: str
    split: str | None = None  # official membership, `train` or `test`; None: no official split


@dataclass
class LayoutScan:
    """What a reader found under raw_dir."""

    class_names: list[str]  # every class the layout defines, in the dataset's own order
    images: list[LabelledImage]  # labelled images present on disk
    missing: list[str] = field(default_factory=list)  # labelled images absent from disk
    unusable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


@dataclass(frozen=True)
class Layout:
    read: Callable[[Path, Mapping[str, Any]], LayoutScan]
    tree: str


def layout_tree(dataset: str) -> str:
    """The expected layout of `dataset`, as shown in a LayoutError."""
    from cnn_feature_behavior.ingestion.readers import LAYOUTS  # the registry imports the readers

    return LAYOUTS[dataset].tree


# ---------------------------------------------------------------------------------------------
# Shared helpers


def rel(path: Path, raw_dir: Path) -> str:
    return path.relative_to(raw_dir).as_posix()


def require_dir(dataset: str, path: Path) -> Path:
    if not path.is_dir():
        raise LayoutError(dataset, path, "expected folder not found")
    return path


def require_file(dataset: str, path: Path) -> Path:
    if not path.is_file():
        raise LayoutError(dataset, path, "expected file not found")
    return path


def is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def not_image_reason(name: str) -> str:
    suffix = PurePosixPath(name).suffix or "(none)"
    return f"not an image file (suffix {suffix})"


def files_under(folder: Path, raw_dir: Path) -> list[str]:
    """Every file below `folder`, as sorted POSIX paths relative to raw_dir."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(rel(Path(root) / name, raw_dir) for name in files)
    return sorted(found)


def read_rows(dataset: str, path: Path, n_fields: int) -> list[list[str]]:
    """Whitespace-separated rows of a list file; blank lines and `#` comments skipped."""
    rows = []
    with open(require_file(dataset, path), encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split(maxsplit=n_fields - 1)
            if len(fields) != n_fields:
                raise LayoutError(
                    dataset, path, f"line {number} has {len(fields)} fields, expected {n_fields}"
                )
            rows.append(fields)
    return rows


def int_field(dataset: str, path: Path, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise LayoutError(dataset, path, f"'{value}' is not an integer id") from None


def labelled_list(
    class_names: list[str],
    labelled: Iterable[tuple[str, str]],
    on_disk: Iterable[str],
    unlisted_reason: str,
) -> LayoutScan:
    """Match (path, class_name) pairs from a label file against the files found on disk."""
    on_disk = set(on_disk)
    images, missing, listed = [], [], set()
    for path, class_name in labelled:
        listed.add(path)
        if path in on_disk:
            images.append(LabelledImage(path, class_name))
        else:
            missing.append(path)
    unusable = [(path, unlisted_reason) for path in sorted(on_disk - listed)]
    return LayoutScan(class_names, images, missing, unusable)


def scan_class_folders(
    dataset: str,
    raw_dir: Path,
    root: Path,
    *,
    left_out: frozenset[str] = frozenset(),
    class_name: Callable[[str], str] = lambda folder: folder,
) -> LayoutScan:
    """`root/<class>/<image>`: one folder per class, classes in folder-name order."""
    require_dir(dataset, root)
    class_names, images, unusable = [], [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir():
            unusable.append((rel(Path(entry.path), raw_dir), "file outside any class folder"))
            continue
        if entry.name in left_out:
            n_files = len(files_under(Path(entry.path), raw_dir))
            logger.info("%s: left out class folder %s (%d files)", dataset, entry.name, n_files)
            continue
        name = class_name(entry.name)
        class_names.append(name)
        for item in sorted(os.scandir(entry.path), key=lambda e: e.name):
            path = Path(item.path)
            if item.is_dir():
                unusable.extend(
                    (nested, "inside a nested folder; images sit directly in the class folder")
                    for nested in files_under(path, raw_dir)
                )
            elif is_image_name(item.name):
                images.append(LabelledImage(rel(path, raw_dir), name))
            else:
                unusable.append((rel(path, raw_dir), not_image_reason(item.name)))
    if not class_names:
        raise LayoutError(dataset, root, "no class folders found")
    return LayoutScan(class_names, images, [], unusable)


def mat_variable(dataset: str, path: Path, name: str, **options: Any) -> np.ndarray:
    """Variable `name` of a MATLAB file, or a LayoutError naming the file."""
    try:
        return scipy.io.loadmat(require_file(dataset, path), **options)[name]
    except KeyError:
        raise LayoutError(dataset, path, f"no variable '{name}' in this .mat file") from None
    except (scipy.io.matlab.MatReadError, ValueError, TypeError, OSError) as error:
        raise LayoutError(dataset, path, f"not a readable .mat file ({error})") from None


def strip_number_prefix(folder: str) -> str:
    """`001.Black_footed_Albatross` -> `Black_footed_Albatross`."""
    return folder.split(".", 1)[1] if re.match(r"^\d+\.", folder) else folder
