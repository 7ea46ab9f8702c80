"""CUB-200-2011: images.txt, image_class_labels.txt, classes.txt and the official split."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnn_feature_behavior.ingestion.readers.base import (
    TEST,
    TRAIN,
    Layout,
    LayoutError,
    LayoutScan,
    files_under,
    int_field,
    labelled_list,
    read_rows,
    require_dir,
    strip_number_prefix,
)
from cnn_feature_behavior.ingestion.readers.splits import (
    split_files_present,
    with_splits,
)


def read_cub200(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    root = require_dir("cub200", raw_dir / "CUB_200_2011")
    images_dir = require_dir("cub200", root / "images")
    classes = {
        int_field("cub200", root / "classes.txt", i): strip_number_prefix(folder)
        for i, folder in read_rows("cub200", root / "classes.txt", 2)
    }
    image_paths = {i: p for i, p in read_rows("cub200", root / "images.txt", 2)}
    image_labels = dict(read_rows("cub200", root / "image_class_labels.txt", 2))
    labelled = []
    for image_id, rel_path in image_paths.items():
        if image_id not in image_labels:
            raise LayoutError(
                "cub200", root / "image_class_labels.txt", f"no label for image id {image_id}"
            )
        class_id = int_field("cub200", root / "image_class_labels.txt", image_labels[image_id])
        if class_id not in classes:
            raise LayoutError("cub200", root / "classes.txt", f"unknown class id {class_id}")
        labelled.append((f"CUB_200_2011/images/{rel_path}", classes[class_id]))
    scan = labelled_list(
        [classes[i] for i in sorted(classes)],
        labelled,
        files_under(images_dir, raw_dir),
        "not listed in images.txt",
    )
    split_file = root / "train_test_split.txt"
    if not split_files_present("cub200", [split_file]):
        return scan
    membership = {}
    for image_id, is_training in read_rows("cub200", split_file, 2):
        if image_id not in image_paths:
            raise LayoutError("cub200", split_file, f"image id {image_id} is not in images.txt")
        if is_training not in ("0", "1"):
            raise LayoutError(
                "cub200",
                split_file,
                f"image id {image_id}: is_training_image '{is_training}' "
                "is neither 1 (train) nor 0 (test)",
            )
        membership[f"CUB_200_2011/images/{image_paths[image_id]}"] = (
            TRAIN if is_training == "1" else TEST
        )
    return with_splits("cub200", scan, membership, [split_file])


LAYOUT_CUB200 = Layout(
    read_cub200,
    """\
<raw_dir>/
  CUB_200_2011/
    images.txt              ("<image_id> <class_folder>/<file>.jpg")
    image_class_labels.txt  ("<image_id> <class_id>")
    classes.txt             ("<class_id> <NNN.Class_name>")
    train_test_split.txt    (optional: "<image_id> <is_training_image>", 1 train, 0 test)
    images/<NNN.Class_name>/<file>.jpg""",
)
