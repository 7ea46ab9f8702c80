"""What every dataset reader shares: the scan it returns, its error, and the file helpers.

A reader turns a dataset's files under `raw_dir` into a `LayoutScan`: the labelled images present
on disk, the labelled images missing from it, and the files found that the layout cannot use.

Every reader lists folders through `entries` / `files_under`, which apply one rule to names and
links (docs/datasets.md, "File names and symbolic links"):
- an entry whose name is not valid UTF-8 is refused (its path shown with the undecodable bytes
  escaped as `\\xNN`, so that it can be logged and stored), a folder with its whole content;
- a symbolic link is followed when its target lies inside raw_dir (resolved), and refused when
  it leads outside raw_dir, is broken, or points to a folder above it (a loop).
Refused entries go to the scan's `unusable` files with the reason.
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

from cnn_feature_behavior.ingestion.image_checks import outside_raw_dir

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)
TRAIN, TEST = "train", "test"


class LayoutError(ValueError):
    """raw_dir does not hold the dataset's expected layout."""

    def __init__(self, dataset: str, path: Path | str, problem: str, hint: str = ""):
        advice = f"{hint}\n" if hint else ""
        super().__init__(
            f"{dataset}: {problem}: {path}\n{advice}"
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


def shown(path: str) -> str:
    """`path` as UTF-8 text: bytes of a name that are not valid UTF-8 escaped as `\\xNN`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir keeps undecodable bytes as lone surrogates
        return False
    return True


@dataclass(frozen=True)
class Entry:
    """A file or folder of a listing, kept by the rule on names and links."""

    name: str
    path: Path
    is_dir: bool  # of the link's target, for a link


@dataclass
class Listing:
    """Files below a folder (POSIX, relative to raw_dir) and the entries refused, with why."""

    files: list[str]
    refused: list[tuple[str, str]] = field(default_factory=list)

    def only(self, keep: Callable[[str], bool]) -> Listing:
        return Listing([f for f in self.files if keep(f)], self.refused)


def _link_problem(path: Path, raw_dir: Path, ancestors: frozenset[Path]) -> str | None:
    """Why the symbolic link at `path` is not followed, or None (it stays inside raw_dir)."""
    target = Path(os.path.realpath(path))
    if not target.exists():
        return f"broken symbolic link (to {shown(os.readlink(path))})"
    outside = outside_raw_dir(path, raw_dir)  # the rule extraction applies again when it opens it
    if outside:
        return outside
    if target.is_dir() and (
        target in ancestors or any(a.is_relative_to(target) for a in ancestors)
    ):
        return f"symbolic link loop (to {shown(str(target))}, a folder that contains it)"
    return None


def entries(
    folder: Path, raw_dir: Path, ancestors: frozenset[Path] = frozenset()
) -> tuple[list[Entry], list[tuple[str, str]]]:
    """The entries of `folder` by name, and those refused by the rule on names and links;
    `ancestors`: the real paths of the folders walked down to `folder` (for loops)."""
    ancestors = ancestors | {Path(os.path.realpath(folder))}
    kept, refused = [], []
    for item in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(item.path)
        if not _is_utf8(item.name):
            what = "folder name" if item.is_dir() else "file name"
            refused.append(
                (
                    shown(rel(path, raw_dir)),
                    f"{what} is not valid UTF-8 (bytes shown as \\xNN); rename it to index it",
                )
            )
            continue
        problem = _link_problem(path, raw_dir, ancestors) if item.is_symlink() else None
        if problem:
            refused.append((rel(path, raw_dir), problem))
        else:
            kept.append(Entry(item.name, path, item.is_dir()))
    return kept, refused


def files_under(folder: Path, raw_dir: Path, ancestors: frozenset[Path] = frozenset()) -> Listing:
    """Every file below `folder`, as sorted POSIX paths relative to raw_dir (links followed
    inside raw_dir), and the entries refused by the rule on names and links."""
    listing = Listing([])
    kept, listing.refused = entries(folder, raw_dir, ancestors)
    below = ancestors | {Path(os.path.realpath(folder))}
    for entry in kept:
        if entry.is_dir:
            nested = files_under(entry.path, raw_dir, below)
            listing.files += nested.files
            listing.refused += nested.refused
        else:
            listing.files.append(rel(entry.path, raw_dir))
    listing.files.sort()
    return listing


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
    found: Listing,
    unlisted_reason: str,
) -> LayoutScan:
    """Match (path, class_name) pairs from a label file against the files found on disk."""
    on_disk = set(found.files)
    images, missing, listed = [], [], set()
    for path, class_name in labelled:
        listed.add(path)
        if path in on_disk:
            images.append(LabelledImage(path, class_name))
        else:
            missing.append(path)
    unusable = found.refused + [(path, unlisted_reason) for path in sorted(on_disk - listed)]
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
    class_names, images = [], []
    ancestors = frozenset({Path(os.path.realpath(root))})
    folders, unusable = entries(root, raw_dir)
    for entry in folders:
        if not entry.is_dir:
            unusable.append((rel(entry.path, raw_dir), "file outside any class folder"))
            continue
        if entry.name in left_out:
            n_files = len(files_under(entry.path, raw_dir, ancestors).files)
            logger.info("%s: left out class folder %s (%d files)", dataset, entry.name, n_files)
            continue
        name = class_name(entry.name)
        class_names.append(name)
        inside = ancestors | {Path(os.path.realpath(entry.path))}
        items, refused = entries(entry.path, raw_dir, ancestors)
        unusable += refused
        for item in items:
            path = item.path
            if item.is_dir:
                nested = files_under(path, raw_dir, inside)
                unusable.extend(
                    (p, "inside a nested folder; images sit directly in the class folder")
                    for p in nested.files
                )
                unusable += nested.refused
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
