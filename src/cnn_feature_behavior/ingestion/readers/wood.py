"""The Oulu wood knots: a label list of images anywhere below raw_dir."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from cnn_feature_behavior.ingestion.readers.base import (
    Layout,
    LayoutError,
    LayoutScan,
    files_under,
    is_image_name,
    labelled_list,
    read_rows,
)

WOOD_CLASSES = ("sound", "dry", "edge", "leaf", "horn", "encased", "decayed")


def read_wood(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    label_file = raw_dir / "labels.txt"
    labelled = []
    for rel_path, class_name in read_rows("wood", label_file, 2):
        if class_name.lower() not in WOOD_CLASSES:
            raise LayoutError("wood", label_file, f"unknown class '{class_name}' for {rel_path}")
        labelled.append((PurePosixPath(rel_path).as_posix(), class_name.lower()))
    on_disk = files_under(raw_dir, raw_dir).only(is_image_name)
    return labelled_list(list(WOOD_CLASSES), labelled, on_disk, "not in labels.txt")


LAYOUT_WOOD = Layout(
    read_wood,
    """\
<raw_dir>/
  labels.txt     ("<image path relative to raw_dir> <class>" a line; '#' comments allowed;
                  class: sound, dry, edge, leaf, horn, encased or decayed)
  knot0001.ppm ...  (the Oulu knot images, anywhere below raw_dir)""",
)
