"""Caltech-101 and Caltech-256: one folder per class, the clutter class left out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnn_feature_behavior.ingestion.readers.base import (
    Layout,
    LayoutScan,
    scan_class_folders,
    strip_number_prefix,
)


def read_caltech101(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    # BACKGROUND_Google is clutter, not an object class.
    return scan_class_folders(
        "caltech101",
        raw_dir,
        raw_dir / "101_ObjectCategories",
        left_out=frozenset({"BACKGROUND_Google"}),
    )


def read_caltech256(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    # 257.clutter is clutter, not an object class.
    return scan_class_folders(
        "caltech256",
        raw_dir,
        raw_dir / "256_ObjectCategories",
        left_out=frozenset({"257.clutter"}),
        class_name=strip_number_prefix,
    )


LAYOUT_CALTECH101 = Layout(
    read_caltech101,
    """\
<raw_dir>/
  101_ObjectCategories/<class>/image_NNNN.jpg   (BACKGROUND_Google is left out)""",
)

LAYOUT_CALTECH256 = Layout(
    read_caltech256,
    """\
<raw_dir>/
  256_ObjectCategories/<NNN.name>/<image>.jpg   (257.clutter is left out)""",
)
