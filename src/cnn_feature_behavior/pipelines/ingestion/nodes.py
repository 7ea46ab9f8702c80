"""Nodes of the ingestion pipeline; the work is done in `ingestion.layouts` (with one reader per
dataset family in `ingestion.readers`), `ingestion.index` and `ingestion.sources`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cnn_feature_behavior.ingestion.image_checks import SizeCheck, image_limits_from_params
from cnn_feature_behavior.ingestion.index import (
    build_index,
    dataset_properties,
    properties_markdown,
)
from cnn_feature_behavior.ingestion.layouts import scan_layout
from cnn_feature_behavior.ingestion.sources import BUNDLED_WRITERS, download_archives

INGESTION_KEYS = (
    "verify_images",
    "allow_missing",
    "download",
    "download_timeout_s",
    "decode_workers",
    "image_limits",
)


def _check_ingestion_params(ingestion: dict[str, Any]) -> None:
    missing = [key for key in INGESTION_KEYS if key not in ingestion]
    if missing:
        raise ValueError(
            f"params:ingestion lacks {missing} (defaults in conf/base/parameters_ingestion.yml); "
            f"got {ingestion}. An env's parameters.yml or a runtime override replaced the whole "
            "block instead of merging into it."
        )


def prepare_raw_dir(
    raw_dir: str, dataset: str, ingestion: dict[str, Any], dataset_source: dict[str, Any]
) -> str:
    """Write a bundled dataset, or download one when `ingestion.download` asks; returns raw_dir."""
    _check_ingestion_params(ingestion)
    if dataset in BUNDLED_WRITERS:
        BUNDLED_WRITERS[dataset](Path(raw_dir))
    elif ingestion["download"]:
        download_archives(
            Path(raw_dir),
            dataset_source.get("archives", []),
            dataset,
            timeout_s=ingestion["download_timeout_s"],
        )
    return raw_dir


def build_image_index(
    raw_dir: str,
    dataset: str,
    ingestion: dict[str, Any],
    dataset_source: dict[str, Any],
    max_images_per_class: int | None,
    resize: int = SizeCheck.resize,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index the labelled, decodable images under raw_dir; list every unusable file with why.

    `resize` is the extraction's shorter side (params:feature_extraction.resize): the size limits
    apply to the image extraction will make."""
    _check_ingestion_params(ingestion)
    size_check = SizeCheck(resize, image_limits_from_params(ingestion["image_limits"]))
    scan = scan_layout(dataset, raw_dir, dataset_source)
    return build_index(
        scan,
        Path(raw_dir),
        dataset=dataset,
        verify_images=ingestion["verify_images"],
        allow_missing=ingestion["allow_missing"],
        max_images_per_class=max_images_per_class,
        decode_workers=ingestion["decode_workers"],
        size_check=size_check,
    )


def summarise_dataset(image_index: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, str]:
    """The dataset's Table 2 row, as a table and as Markdown."""
    properties = dataset_properties(image_index, dataset)
    return properties, properties_markdown(properties)
