"""Official train / test splits: the split files' presence, membership and each image's split."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath

import numpy as np

from cnn_feature_behavior.ingestion.readers.base import (
    TRAIN,
    LayoutError,
    LayoutScan,
    is_image_name,
    mat_variable,
)

logger = logging.getLogger(__name__)


def split_files_present(dataset: str, files: Iterable[Path]) -> bool:
    """True when every file of a split set is present, False when none is; a partial set is an
    error (the split it describes would be one-sided)."""
    files = list(files)
    present = [f for f in files if f.is_file()]
    if not present:
        logger.info(
            "%s: no official split files (%s): the index's split column is null",
            dataset,
            ", ".join(f.name for f in files),
        )
        return False
    absent = [f for f in files if not f.is_file()]
    if absent:
        raise LayoutError(
            dataset,
            absent[0],
            f"split file missing while {', '.join(f.name for f in present)} is present "
            "(give the whole set of split files, or none)",
        )
    return True


def split_membership(
    dataset: str, lists: Iterable[tuple[str, Path, Iterable[str]]]
) -> dict[str, str]:
    """{path: split} from (split, file, paths) lists; a path in two splits is an error."""
    membership: dict[str, str] = {}
    source: dict[str, Path] = {}
    for split, path, entries in lists:
        for entry in entries:
            previous = membership.setdefault(entry, split)
            if previous != split:
                raise LayoutError(
                    dataset,
                    path,
                    f"{entry} is listed in both the {previous} split ({source[entry].name}) "
                    f"and the {split} split",
                )
            source.setdefault(entry, path)
    return membership


def with_splits(
    dataset: str, scan: LayoutScan, membership: Mapping[str, str], files: Iterable[Path]
) -> LayoutScan:
    """The scan with each image's official split; every labelled image on disk needs one.

    The official split files of every dataset here cover all of its labelled images, so an image
    in none of them means split files that do not belong to these images: an error, not a guess.
    """
    named = ", ".join(str(f) for f in files)
    unsplit = [image.path for image in scan.images if image.path not in membership]
    if unsplit:
        raise LayoutError(
            dataset,
            named,
            f"{len(unsplit)} of the {len(scan.images)} labelled images on disk are in no split "
            f"file (e.g. {', '.join(unsplit[:3])}); split files from another release? Remove "
            "them to index without an official split",
        )
    known = {image.path for image in scan.images}.union(scan.missing)
    stray = [path for path in membership if path not in known]
    if stray:
        logger.warning(
            "%s: %d entries of the split files name no labelled image on disk (e.g. %s); left out",
            dataset,
            len(stray),
            ", ".join(stray[:3]),
        )
    images = [replace(image, split=membership[image.path]) for image in scan.images]
    n_train = sum(image.split == TRAIN for image in images)
    logger.info(
        "%s: official split from %s: %d train, %d test",
        dataset,
        named,
        n_train,
        len(images) - n_train,
    )
    return LayoutScan(scan.class_names, images, scan.missing, scan.unusable)


def split_by_lists(
    dataset: str,
    scan: LayoutScan,
    lists: Iterable[tuple[str, Path, Iterable[str]]],
    files: Iterable[Path],
) -> LayoutScan:
    """The scan with each image's split from (split, file, paths) lists read from `files`."""
    return with_splits(dataset, scan, split_membership(dataset, lists), files)


def read_image_paths(dataset: str, path: Path) -> list[str]:
    """`<folder>/<image>` lines of a split list (blank lines skipped)."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        parts = PurePosixPath(entry).parts
        if len(parts) != 2 or entry.startswith("/") or not is_image_name(entry):
            raise LayoutError(
                dataset, path, f"line {number}: '{entry}' is not a <folder>/<image> path"
            )
        entries.append(entry)
    return entries


def mat_image_numbers(dataset: str, path: Path, name: str, n_images: int) -> list[int]:
    """Variable `name` of a .mat file as image numbers 1..n_images."""
    values = np.ravel(mat_variable(dataset, path, name))
    try:
        numbers = values.astype(float)
    except (TypeError, ValueError):
        numbers = np.array([np.nan])
    if numbers.size and (
        not np.all(np.isfinite(numbers))
        or np.any(numbers != np.round(numbers))
        or numbers.min() < 1
        or numbers.max() > n_images
    ):
        raise LayoutError(
            dataset, path, f"'{name}' holds values that are not image numbers 1..{n_images}"
        )
    return [int(n) for n in numbers]


def mat_strings(dataset: str, path: Path, name: str) -> list[str]:
    """Variable `name` of a .mat file as strings: a cell array of strings or a char matrix."""
    values = mat_variable(dataset, path, name)
    if values.dtype.kind == "U":
        return [str(v).strip() for v in np.ravel(values)]
    strings = []
    for number, cell in enumerate(np.ravel(values), start=1):
        item = np.ravel(cell) if isinstance(cell, np.ndarray) else np.array([cell])
        if item.size != 1 or not isinstance(item[0], str):
            raise LayoutError(
                dataset, path, f"entry {number} of '{name}' is not a string ({cell!r})"
            )
        strings.append(item[0].strip())
    return strings
