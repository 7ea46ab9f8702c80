"""Food-101: one folder per class; meta/test.txt selects the test split."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnn_feature_behavior.ingestion.readers.base import (
    LabelledImage,
    Layout,
    LayoutError,
    LayoutScan,
    read_rows,
    require_dir,
    scan_class_folders,
)

logger = logging.getLogger(__name__)


def read_food101(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    root = require_dir("food101", raw_dir / "food-101")
    scan = scan_class_folders("food101", raw_dir, root / "images")
    test_list = root / "meta" / "test.txt"
    if not test_list.is_file():
        if not options.get("all_images_without_meta", False):
            raise LayoutError(
                "food101",
                test_list,
                "the test split list is missing (set dataset_source.all_images_without_meta: "
                "true in conf/food101/parameters.yml to index every image instead)",
            )
        logger.warning(
            "food101: %s absent: indexing all %d images, not only the test split",
            test_list,
            len(scan.images),
        )
        return scan
    classes_file = root / "meta" / "classes.txt"
    class_names = (
        [c for c in classes_file.read_text(encoding="utf-8").split() if c]
        if classes_file.is_file()
        else scan.class_names
    )
    labelled = []
    for (entry,) in read_rows("food101", test_list, 1):
        class_name = entry.split("/", 1)[0]
        if class_name not in class_names:
            raise LayoutError("food101", test_list, f"unknown class in '{entry}'")
        labelled.append((f"food-101/images/{entry}.jpg", class_name))
    on_disk = {image.path for image in scan.images}
    images = [LabelledImage(path, name) for path, name in labelled if path in on_disk]
    missing = [path for path, _ in labelled if path not in on_disk]
    logger.info("food101: left out %d images outside the test split", len(on_disk) - len(images))
    return LayoutScan(class_names, images, missing, scan.unusable)


LAYOUT_FOOD101 = Layout(
    read_food101,
    """\
<raw_dir>/
  food-101/
    images/<class>/<id>.jpg
    meta/test.txt      ("<class>/<id>" lines: the test split, the only one indexed)
    meta/classes.txt   (optional: class order, else folder-name order)""",
)
