"""Oxford-IIIT Pet (catsdogs): annotations/list.txt and the trainval / test split."""

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
    is_image_name,
    labelled_list,
    not_image_reason,
    read_rows,
    require_dir,
)
from cnn_feature_behavior.ingestion.readers.splits import (
    split_by_lists,
    split_files_present,
)


def read_catsdogs(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    image_dir = require_dir("catsdogs", raw_dir / "images")
    list_file = raw_dir / "annotations" / "list.txt"
    breeds: dict[int, str] = {}
    labelled = []
    for name, class_id, _species, _breed_id in read_rows("catsdogs", list_file, 4):
        breed = name.rsplit("_", 1)[0]
        class_number = int_field("catsdogs", list_file, class_id)
        if breeds.setdefault(class_number, breed) != breed:
            raise LayoutError(
                "catsdogs",
                list_file,
                f"class id {class_id} names both {breeds[class_number]} and {breed}",
            )
        labelled.append((f"images/{name}.jpg", breed))
    on_disk = files_under(image_dir, raw_dir)
    scan = labelled_list(
        [breeds[i] for i in sorted(breeds)],
        labelled,
        on_disk.only(is_image_name),
        "not listed in annotations/list.txt",
    )
    scan.unusable += [(p, not_image_reason(p)) for p in on_disk.files if not is_image_name(p)]
    split_files = [raw_dir / "annotations" / "trainval.txt", raw_dir / "annotations" / "test.txt"]
    if not split_files_present("catsdogs", split_files):
        return scan
    lists = []
    for split, f in zip((TRAIN, TEST), split_files):
        rows = read_rows("catsdogs", f, 4)
        for _name, class_id, _species, _breed_id in rows:
            int_field("catsdogs", f, class_id)
        lists.append((split, f, [f"images/{row[0]}.jpg" for row in rows]))
    return split_by_lists("catsdogs", scan, lists, split_files)


LAYOUT_CATSDOGS = Layout(
    read_catsdogs,
    """\
<raw_dir>/
  annotations/list.txt   ("<Breed_name>_<n> <class_id> <species> <breed_id>" lines)
  annotations/trainval.txt, annotations/test.txt   (optional: the official split, lines as in
                                                    list.txt)
  images/<Breed_name>_<n>.jpg""",
)
