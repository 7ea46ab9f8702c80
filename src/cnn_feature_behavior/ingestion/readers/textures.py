"""DTD (textures): one folder per class and ten numbered train / val / test splits."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnn_feature_behavior.ingestion.readers.base import (
    TEST,
    TRAIN,
    Layout,
    LayoutScan,
    scan_class_folders,
)
from cnn_feature_behavior.ingestion.readers.splits import (
    read_image_paths,
    split_by_lists,
    split_files_present,
)

# DTD ships ten train/val/test splits, numbered 1..10.
TEXTURES_SPLIT_NUMBERS = range(1, 11)


def read_textures(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    scan = scan_class_folders("textures", raw_dir, raw_dir / "dtd" / "images")
    number = options.get("split_number", 1)
    if isinstance(number, bool) or number not in TEXTURES_SPLIT_NUMBERS:
        raise ValueError(
            "textures: dataset_source.split_number must be one of DTD's splits 1..10, "
            f"got {number!r} (conf/textures/parameters.yml)"
        )
    labels = raw_dir / "dtd" / "labels"
    split_files = [labels / f"{name}{number}.txt" for name in ("train", "val", "test")]
    if not split_files_present("textures", split_files):
        return scan
    # The validation list is training data here, as every split's validation set.
    lists = [
        (split, f, [f"dtd/images/{entry}" for entry in read_image_paths("textures", f)])
        for split, f in zip((TRAIN, TRAIN, TEST), split_files)
    ]
    return split_by_lists("textures", scan, lists, split_files)


LAYOUT_TEXTURES = Layout(
    read_textures,
    """\
<raw_dir>/
  dtd/images/<class>/<class>_NNNN.jpg
  dtd/labels/train<k>.txt, val<k>.txt, test<k>.txt   (optional: "<class>/<image>.jpg" lines;
      split k = dataset_source.split_number, 1 by default; train and val are train)""",
)
