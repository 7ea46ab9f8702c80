"""MIT Indoor 67: one folder per class, TrainImages.txt / TestImages.txt select and split."""

from __future__ import annotations

import logging
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
    split_files_present,
    split_membership,
    with_splits,
)

logger = logging.getLogger(__name__)


def read_mit67(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    scan = scan_class_folders("mit67", raw_dir, raw_dir / "Images")
    split_files = [raw_dir / "TrainImages.txt", raw_dir / "TestImages.txt"]
    if not split_files_present("mit67", split_files):
        logger.warning(
            "mit67: TrainImages.txt/TestImages.txt not in %s: indexing every image under Images/ "
            "(%d); the paper's 6,700 images are those two lists",
            raw_dir,
            len(scan.images),
        )
        return scan
    membership = split_membership(
        "mit67",
        [
            (split, f, [f"Images/{entry}" for entry in read_image_paths("mit67", f)])
            for split, f in zip((TRAIN, TEST), split_files)
        ],
    )
    listed = list(membership)
    listed_set = set(listed)
    images = [image for image in scan.images if image.path in listed_set]
    present = {image.path for image in images}
    logger.info(
        "mit67: left out %d images not in TrainImages.txt/TestImages.txt",
        len(scan.images) - len(images),
    )
    missing = [path for path in listed if path not in present]
    return with_splits(
        "mit67",
        LayoutScan(scan.class_names, images, missing, scan.unusable),
        membership,
        split_files,
    )


LAYOUT_MIT67 = Layout(
    read_mit67,
    """\
<raw_dir>/
  Images/<class>/<image>.jpg
  TrainImages.txt, TestImages.txt   (optional: "<class>/<image>.jpg" lines; when present only
                                     these images are indexed, as in the paper, with their
                                     split)""",
)
