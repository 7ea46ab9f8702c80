"""Reading a dataset's raw_dir: the dataset's reader (`ingestion.readers`), then the optional
class-names file (`class_names_file`) that renames the classes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from cnn_feature_behavior.ingestion.class_names import class_names_from_file
from cnn_feature_behavior.ingestion.readers import LAYOUTS
from cnn_feature_behavior.ingestion.readers.base import LayoutError, LayoutScan

logger = logging.getLogger(__name__)


def scan_layout(dataset: str, raw_dir: Path | str, options: Mapping[str, Any]) -> LayoutScan:
    """Read `raw_dir` with the reader of `dataset`; `options` are its dataset-specific switches."""
    if dataset not in LAYOUTS:
        raise ValueError(f"Unknown dataset '{dataset}'; known datasets: {', '.join(LAYOUTS)}")
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir() or not any(raw_dir.iterdir()):
        problem = "raw_dir does not exist or is not a folder" if not raw_dir.is_dir() else None
        raise LayoutError(
            dataset,
            raw_dir,
            problem or "raw_dir is empty",
            _where_to_get(dataset, options.get("archives") or []),
        )
    scan = LAYOUTS[dataset].read(raw_dir, options)
    # A labelled file refused by the rule on names and links is listed once, with its reason.
    refused = {path for path, _ in scan.unusable}
    scan.missing = [path for path in scan.missing if path not in refused]
    if len(set(scan.class_names)) != len(scan.class_names):
        raise LayoutError(dataset, raw_dir, "class names are not unique")
    names_file = options.get("class_names_file")
    if names_file is not None:
        scan = rename_classes(scan, class_names_file_path(raw_dir, names_file))
    return scan


def _where_to_get(dataset: str, archives: list[Mapping[str, Any]]) -> str:
    """How a dataset not there yet can be had: its files in place, or the configured download."""
    put = "Put the dataset's files there, or point raw_dir at them (--params raw_dir=<path>)"
    if not archives:
        return f"{put}."
    config = f"conf/{dataset}/parameters.yml"
    if all(archive.get("sha256") for archive in archives):
        return (
            f"{put}, or let the run download them: --params ingestion.download=true (the "
            f"archives of dataset_source.archives in {config}, sha256 checked)."
        )
    return (
        f"{put}; ingestion.download=true can fetch them once the published sha256 of each archive "
        f"is added to dataset_source.archives in {config}."
    )


def class_names_file_path(raw_dir: Path, names_file: Any) -> Path:
    """`dataset_source.class_names_file`: absolute, or relative to raw_dir."""
    if not isinstance(names_file, str) or not names_file.strip():
        raise ValueError(
            f"dataset_source.class_names_file must be a path (absolute, or relative to raw_dir) "
            f"or null, got {names_file!r}"
        )
    path = Path(names_file).expanduser()
    return path if path.is_absolute() else raw_dir / path


def rename_classes(scan: LayoutScan, names_file: Path) -> LayoutScan:
    """The scan with its classes renamed by `names_file` (format: ingestion/class_names.py)."""
    renamed = dict(zip(scan.class_names, class_names_from_file(names_file, scan.class_names)))
    logger.info("class names from %s", names_file)
    return LayoutScan(
        [renamed[c] for c in scan.class_names],
        [replace(image, class_name=renamed[image.class_name]) for image in scan.images],
        scan.missing,
        scan.unusable,
    )
