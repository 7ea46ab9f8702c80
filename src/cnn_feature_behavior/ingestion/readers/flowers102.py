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
    _files_under,
    _labelled_list,
    _mat_variable,
    _require_dir,
)
from cnn_feature_behavior.ingestion.readers.splits import (
    _mat_image_numbers,
    _split_files_present,
    _split_membership,
    _with_splits,
)


def read_flowers102(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    image_dir = _require_dir("flowers102", raw_dir / "jpg")
    labels = np.ravel(_mat_variable("flowers102", raw_dir / "imagelabels.mat", "labels")).astype(
        int
    )
    class_names = [f"class_{c:03d}" for c in range(1, labels.max() + 1)]
    labelled = (
        (f"jpg/image_{number:05d}.jpg", class_names[label - 1])
        for number, label in enumerate(labels, start=1)
    )
    scan = _labelled_list(
        class_names,
        labelled,
        _files_under(image_dir, raw_dir),
        "not labelled in imagelabels.mat",
    )
    setid = raw_dir / "setid.mat"
    if not _split_files_present("flowers102", [setid]):
        return scan
    # trnid and valid (10 images per class each) are train, tstid test.
    lists = [
        (
            split,
            setid,
            [
                f"jpg/image_{n:05d}.jpg"
                for n in _mat_image_numbers("flowers102", setid, variable, len(labels))
            ],
        )
        for variable, split in (("trnid", TRAIN), ("valid", TRAIN), ("tstid", TEST))
    ]
    return _with_splits("flowers102", scan, _split_membership("flowers102", lists), [setid])


LAYOUT_FLOWERS102 = Layout(
    read_flowers102,
    """\
<raw_dir>/
  imagelabels.mat   (labels: 1..102, one per image, in image number order)
  setid.mat         (optional: the official split; trnid and valid are train, tstid test)
  jpg/image_00001.jpg ... image_08189.jpg""",
)
