"""Oxford Flowers 102: imagelabels.mat and the official split setid.mat."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cnn_feature_behavior.ingestion.readers.base import (
    TEST,
    TRAIN,
    Layout,
    LayoutScan,
    files_under,
    labelled_list,
    mat_variable,
    require_dir,
)
from cnn_feature_behavior.ingestion.readers.splits import (
    mat_image_numbers,
    split_by_lists,
    split_files_present,
)


def read_flowers102(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    image_dir = require_dir("flowers102", raw_dir / "jpg")
    labels = np.ravel(mat_variable("flowers102", raw_dir / "imagelabels.mat", "labels")).astype(int)
    class_names = [f"class_{c:03d}" for c in range(1, labels.max() + 1)]
    labelled = (
        (f"jpg/image_{number:05d}.jpg", class_names[label - 1])
        for number, label in enumerate(labels, start=1)
    )
    scan = labelled_list(
        class_names,
        labelled,
        files_under(image_dir, raw_dir),
        "not labelled in imagelabels.mat",
    )
    setid = raw_dir / "setid.mat"
    if not split_files_present("flowers102", [setid]):
        return scan
    # trnid and valid (10 images per class each) are train, tstid test.
    lists = [
        (
            split,
            setid,
            [
                f"jpg/image_{n:05d}.jpg"
                for n in mat_image_numbers("flowers102", setid, variable, len(labels))
            ],
        )
        for variable, split in (("trnid", TRAIN), ("valid", TRAIN), ("tstid", TEST))
    ]
    return split_by_lists("flowers102", scan, lists, [setid])


LAYOUT_FLOWERS102 = Layout(
    read_flowers102,
    """\
<raw_dir>/
  imagelabels.mat   (labels: 1..102, one per image, in image number order)
  setid.mat         (optional: the official split; trnid and valid are train, tstid test)
  jpg/image_00001.jpg ... image_08189.jpg""",
)
