"""Stanford Dogs: one folder per breed and the official split train_list.mat / test_list.mat."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from cnn_feature_behavior.ingestion.readers.base import (
    TEST,
    TRAIN,
    Layout,
    LayoutError,
    LayoutScan,
    is_image_name,
    scan_class_folders,
)
from cnn_feature_behavior.ingestion.readers.splits import (
    mat_strings,
    split_by_lists,
    split_files_present,
)


def read_stanforddogs(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    scan = scan_class_folders(
        "stanforddogs",
        raw_dir,
        raw_dir / "Images",
        class_name=lambda folder: folder.split("-", 1)[-1],
    )
    split_files = [raw_dir / "train_list.mat", raw_dir / "test_list.mat"]
    if not split_files_present("stanforddogs", split_files):
        return scan
    lists = []
    for split, f in zip((TRAIN, TEST), split_files):
        entries = mat_strings("stanforddogs", f, "file_list")
        for number, entry in enumerate(entries, start=1):
            if len(PurePosixPath(entry).parts) != 2 or not is_image_name(entry):
                raise LayoutError(
                    "stanforddogs",
                    f,
                    f"file_list entry {number}: '{entry}' is not a <n<wnid>-<breed>>/<image> path",
                )
        lists.append((split, f, [f"Images/{entry}" for entry in entries]))
    return split_by_lists("stanforddogs", scan, lists, split_files)


LAYOUT_STANFORDDOGS = Layout(
    read_stanforddogs,
    """\
<raw_dir>/
  Images/n<wnid>-<breed>/<image>.jpg
  train_list.mat, test_list.mat   (optional: the official split; variable file_list, a cell
                                   array of "n<wnid>-<breed>/<image>.jpg" paths under Images/)""",
)
