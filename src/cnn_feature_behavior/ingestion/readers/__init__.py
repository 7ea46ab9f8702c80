"""Readers of the target datasets' official on-disk layouts, one module per dataset family.

Each reader turns a dataset's files under `raw_dir` into a `LayoutScan` (`readers.base`). Each
image carries the dataset's official split (`train` or `test`, validation sets counted as train)
where the dataset ships split files, else None (`readers.splits`); the study itself merges the
splits, as in the paper. A `raw_dir` that does not match the layout, or split files that are
malformed or do not cover every labelled image, raise `LayoutError`, which names the path and
shows the expected layout. `LAYOUTS` maps each dataset name to its reader and layout.
"""

from __future__ import annotations

from cnn_feature_behavior.ingestion.readers.base import Layout
from cnn_feature_behavior.ingestion.readers.caltech import LAYOUT_CALTECH101, LAYOUT_CALTECH256
from cnn_feature_behavior.ingestion.readers.catsdogs import LAYOUT_CATSDOGS
from cnn_feature_behavior.ingestion.readers.cub200 import LAYOUT_CUB200
from cnn_feature_behavior.ingestion.readers.digits import LAYOUT_DIGITS
from cnn_feature_behavior.ingestion.readers.flowers102 import LAYOUT_FLOWERS102
from cnn_feature_behavior.ingestion.readers.food101 import LAYOUT_FOOD101
from cnn_feature_behavior.ingestion.readers.imagefolder import LAYOUT_IMAGEFOLDER
from cnn_feature_behavior.ingestion.readers.imagenet import LAYOUT_IMAGENET
from cnn_feature_behavior.ingestion.readers.mit67 import LAYOUT_MIT67
from cnn_feature_behavior.ingestion.readers.stanforddogs import LAYOUT_STANFORDDOGS
from cnn_feature_behavior.ingestion.readers.textures import LAYOUT_TEXTURES
from cnn_feature_behavior.ingestion.readers.wood import LAYOUT_WOOD

# In the order of the paper's Table 2 (as before the split).
LAYOUTS: dict[str, Layout] = {
    "imagenet": LAYOUT_IMAGENET,
    "cub200": LAYOUT_CUB200,
    "wood": LAYOUT_WOOD,
    "flowers102": LAYOUT_FLOWERS102,
    "caltech101": LAYOUT_CALTECH101,
    "mit67": LAYOUT_MIT67,
    "textures": LAYOUT_TEXTURES,
    "caltech256": LAYOUT_CALTECH256,
    "stanforddogs": LAYOUT_STANFORDDOGS,
    "catsdogs": LAYOUT_CATSDOGS,
    "food101": LAYOUT_FOOD101,
    "digits": LAYOUT_DIGITS,
    # A user's own class-per-folder images (conf/imagefolder/).
    "imagefolder": LAYOUT_IMAGEFOLDER,
}
