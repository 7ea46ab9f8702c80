"""scikit-learn's bundled digits, written as one folder per digit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnn_feature_behavior.ingestion.readers.base import (
    Layout,
    LayoutScan,
    scan_class_folders,
)


def read_digits(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    return scan_class_folders("digits", raw_dir, raw_dir)


LAYOUT_DIGITS = Layout(
    read_digits,
    """\
<raw_dir>/
  <digit>/<index>.png   (written from scikit-learn's bundled digits when raw_dir is absent
                         or empty)""",
)
