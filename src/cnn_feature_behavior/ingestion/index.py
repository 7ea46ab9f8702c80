"""From a layout scan to the image index, its rejects and the dataset's Table 2 row."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath

import pandas as pd

from cnn_feature_behavior.ingestion.image_checks import (
    DEFAULT_SIZE_CHECK,
    SizeCheck,
    find_decode_problems,
)
from cnn_feature_behavior.ingestion.readers.base import LayoutScan

logger = logging.getLogger(__name__)

# split: the official membership, `train` / `test`, or None where the dataset ships none.
INDEX_COLUMNS = ["image_id", "path", "label", "class_name", "split"]
REJECT_COLUMNS = ["path", "reason", "stage"]
PROPERTY_COLUMNS = [
    "dataset",
    "n_images",
    "n_classes",
    "min_images_per_class",
    "max_images_per_class",
    "mean_images_per_class",
]
# A class needs images inside it and a second image to compare; the DKS of a class against the
# rest compares two distributions, which one image cannot describe.
MIN_IMAGES_PER_CLASS = 2


class MissingImagesError(RuntimeError):
    """Labelled images are absent from disk and the run does not allow it."""


def select_per_class(
    candidates: Mapping[str, list[str]],
    limit: int | None,
    find_problems: Callable[[list[str]], dict[str, str]] | None,
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The first `limit` usable paths of each class, in candidate order.

    `find_problems` checks a batch of paths ({path: reason} for the unusable ones); only as many
    candidates are checked as it takes to fill each class, so a small subsample stays fast.
    Returns ({class: selected paths}, {path: reason} for the candidates found unusable).
    """
    selected: dict[str, list[str]] = {c: [] for c in candidates}
    problems: dict[str, str] = {}
    cursor = dict.fromkeys(candidates, 0)
    while True:
        batch = []
        for class_name, paths in candidates.items():
            wanted = len(paths) if limit is None else limit - len(selected[class_name])
            start = cursor[class_name]
            cursor[class_name] = min(len(paths), start + max(0, wanted))
            batch.extend((class_name, p) for p in paths[start : cursor[class_name]])
        if not batch:
            return selected, problems
        found = find_problems([p for _, p in batch]) if find_problems else {}
        problems.update(found)
        for class_name, path in batch:
            if path not in found:
                selected[class_name].append(path)


def build_index(
    scan: LayoutScan,
    raw_dir: Path,
    *,
    dataset: str,
    verify_images: bool,
    allow_missing: bool,
    max_images_per_class: int | None,
    decode_workers: int | None = None,
    size_check: SizeCheck = DEFAULT_SIZE_CHECK,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(image_index, ingestion_rejects) from a layout scan; see docs/data_contracts.md.

    With `verify_images`, every selected image is decoded and checked against `size_check`."""
    if max_images_per_class is not None and max_images_per_class < 1:
        raise ValueError(f"max_images_per_class must be at least 1, got {max_images_per_class}")
    rejects = _layout_rejects(scan, raw_dir, dataset, allow_missing)
    checker = (
        (lambda b: find_decode_problems(raw_dir, b, decode_workers, size_check))
        if verify_images
        else None
    )
    selected, problems = _select_images(scan, dataset, max_images_per_class, checker)
    rejects += sorted(problems.items())
    kept_classes, too_small = _classes_with_enough_images(scan, selected, dataset, raw_dir)
    rejects += too_small
    index = _index_table(scan, selected, kept_classes, dataset, raw_dir)
    logger.info(
        "%s: indexed %d images in %d classes, %d rejects",
        dataset,
        len(index),
        len(kept_classes),
        len(rejects),
    )
    return index, rejects_table(rejects, stage="ingestion")


def _layout_rejects(
    scan: LayoutScan, raw_dir: Path, dataset: str, allow_missing: bool
) -> list[tuple[str, str]]:
    """The scan's missing (an error unless allowed) and unusable files, as (path, reason)."""
    rejects: list[tuple[str, str]] = []
    if scan.missing:
        examples = ", ".join(scan.missing[:3])
        if not allow_missing:
            raise MissingImagesError(
                f"{dataset}: {len(scan.missing)} labelled images are missing from {raw_dir} "
                f"(e.g. {examples}); a partial download? Set ingestion.allow_missing: true in "
                f"conf/{dataset}/parameters.yml (or --params ingestion.allow_missing=true) to "
                "index the images present and list the missing ones in ingestion_rejects."
            )
        logger.warning(
            "%s: %d labelled images missing on disk (e.g. %s), listed in ingestion_rejects",
            dataset,
            len(scan.missing),
            examples,
        )
        rejects += [(p, "labelled but missing on disk") for p in scan.missing]
    if scan.unusable:
        logger.warning(
            "%s: %d files under %s cannot be used (%s), listed in ingestion_rejects",
            dataset,
            len(scan.unusable),
            raw_dir,
            _count_reasons(reason for _, reason in scan.unusable),
        )
        rejects += scan.unusable
    return rejects


def _select_images(
    scan: LayoutScan,
    dataset: str,
    max_images_per_class: int | None,
    find_problems: Callable[[list[str]], dict[str, str]] | None,
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The first usable images of each class (path order), and {path: reason} of the unusable."""
    candidates: dict[str, list[str]] = {c: [] for c in scan.class_names}
    for image in scan.images:
        candidates[image.class_name].append(image.path)
    candidates = {c: sorted(paths) for c, paths in candidates.items() if paths}
    selected, problems = select_per_class(candidates, max_images_per_class, find_problems)
    if problems:
        logger.warning(
            "%s: %d files do not decode as images or are beyond the size limits, listed in "
            "ingestion_rejects",
            dataset,
            len(problems),
        )
    if max_images_per_class is not None:
        kept = sum(map(len, selected.values()))
        logger.info(
            "%s: max_images_per_class=%d keeps the first %d usable images of each class; "
            "%d labelled images left out",
            dataset,
            max_images_per_class,
            kept,
            len(scan.images) - kept - len(problems),
        )
    return selected, problems


def _classes_with_enough_images(
    scan: LayoutScan, selected: Mapping[str, list[str]], dataset: str, raw_dir: Path
) -> tuple[list[str], list[tuple[str, str]]]:
    """The classes kept (at least MIN_IMAGES_PER_CLASS usable images) and the rejects of the
    others; fewer than two classes kept is an error."""
    # Over every class of the layout: one with no image on disk at all is reported too.
    too_small = {
        c: selected.get(c, [])
        for c in scan.class_names
        if len(selected.get(c, ())) < MIN_IMAGES_PER_CLASS
    }
    if too_small:
        logger.warning(
            "%s: %d classes have fewer than %d usable images and are left out: %s",
            dataset,
            len(too_small),
            MIN_IMAGES_PER_CLASS,
            ", ".join(f"{c} ({len(p)})" for c, p in too_small.items()),
        )
    rejects = [
        (p, f"class {c} has {len(paths)} usable image; at least {MIN_IMAGES_PER_CLASS} needed")
        for c, paths in too_small.items()
        for p in paths
    ]
    kept_classes = [c for c in scan.class_names if c not in too_small]
    if len(kept_classes) < 2:
        raise ValueError(
            f"{dataset}: {len(kept_classes)} classes with at least {MIN_IMAGES_PER_CLASS} usable "
            f"images under {raw_dir}; a study needs at least 2"
        )
    return kept_classes, rejects


def _index_table(
    scan: LayoutScan,
    selected: Mapping[str, list[str]],
    kept_classes: list[str],
    dataset: str,
    raw_dir: Path,
) -> pd.DataFrame:
    """The image index: labels 0..C-1 in class order, rows sorted by (label, path)."""
    splits = {image.path: image.split for image in scan.images}
    rows = [
        (str(PurePosixPath(path).with_suffix("")), path, label, class_name, splits[path])
        for label, class_name in enumerate(kept_classes)
        for path in selected[class_name]
    ]
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS).astype({"label": "int64", "split": object})
    duplicated = index["image_id"][index["image_id"].duplicated()]
    if not duplicated.empty:
        raise ValueError(
            f"{dataset}: image ids are not unique under {raw_dir} (files that differ only in "
            f"suffix?): {', '.join(duplicated.head(3))}"
        )
    return index.sort_values(["label", "path"], kind="stable", ignore_index=True)


def rejects_table(rejects: Iterable[tuple[str, str]], stage: str) -> pd.DataFrame:
    """The `*_rejects` table: one row per (path, reason) with the stage that rejected it."""
    rows = [(path, reason, stage) for path, reason in rejects]
    return pd.DataFrame(rows, columns=REJECT_COLUMNS, dtype=object)


def _count_reasons(reasons: Iterable[str]) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in Counter(reasons).most_common())


def dataset_properties(index: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row: |I|, |C|, min, max and mean images per class (the paper's Table 2 row)."""
    per_class = index.groupby("label").size()
    return pd.DataFrame(
        [
            {
                "dataset": dataset,
                "n_images": int(len(index)),
                "n_classes": int(per_class.size),
                "min_images_per_class": int(per_class.min()),
                "max_images_per_class": int(per_class.max()),
                "mean_images_per_class": float(per_class.mean()),
            }
        ],
        columns=PROPERTY_COLUMNS,
    )


def properties_markdown(properties: pd.DataFrame) -> str:
    """Table 2 of the paper as Markdown, one row per dataset."""
    lines = [
        "| Dataset | #Images \\|I\\| | #Classes \\|C\\| | #Images per class | "
        "Average #images per class |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in properties.itertuples(index=False):
        low, high = row.min_images_per_class, row.max_images_per_class
        spread = f"{low}" if low == high else f"{low} - {high}"
        lines.append(
            f"| {row.dataset} | {row.n_images:,} | {row.n_classes} | {spread} | "
            f"{row.mean_images_per_class:.0f} |"
        )
    return "\n".join(lines) + "\n"
