"""ImageNet 2012 validation: the devkit ground truth or the per-image solution CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cnn_feature_behavior.ingestion.readers.base import (
    Layout,
    LayoutError,
    LayoutScan,
    files_under,
    int_field,
    labelled_list,
    mat_variable,
    read_rows,
    rel,
)

IMAGENET_IMAGE_DIRS = ("ILSVRC2012_img_val", "ILSVRC/Data/CLS-LOC/val")
IMAGENET_DEVKIT_DIRS = ("ILSVRC2012_devkit_t12/data", ".")


def _imagenet_find(raw_dir: Path, folders: Iterable[str], name: str) -> Path | None:
    return next((raw_dir / f / name for f in folders if (raw_dir / f / name).is_file()), None)


def _imagenet_meta(meta_path: Path) -> tuple[dict[int, str], dict[str, str]]:
    """meta.mat -> ({ILSVRC2012_ID: wnid}, {wnid: words}) for the 1,000 leaf classes."""
    synsets = np.atleast_1d(mat_variable("imagenet", meta_path, "synsets", squeeze_me=True))
    try:
        ids = [int(i) for i in synsets["ILSVRC2012_ID"]]
        wnids = [str(w) for w in synsets["WNID"]]
        words = [str(w) for w in synsets["words"]]
        children = [int(c) for c in synsets["num_children"]]
    except (ValueError, IndexError) as error:
        raise LayoutError(
            "imagenet", meta_path, f"synsets lack ILSVRC2012_ID/WNID/words/num_children ({error})"
        ) from None
    leaves = [i for i, c in enumerate(children) if c == 0]
    return {ids[i]: wnids[i] for i in leaves}, {wnids[i]: words[i] for i in leaves}


def _imagenet_class_names(wnids: list[str], words: Mapping[str, str]) -> list[str]:
    """First synonym of each class; names shared by several wnids (`crane`) get the wnid."""
    first = [words[w].split(",")[0].strip() if w in words else w for w in wnids]
    shared = {name for name in first if first.count(name) > 1}
    return [f"{name} ({w})" if name in shared else name for name, w in zip(first, wnids)]


def _labels_from_solution(solution: Path) -> dict[str, str]:
    """{image id: wnid} from LOC_val_solution.csv (the first token of PredictionString)."""
    with open(solution, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"ImageId", "PredictionString"} <= set(rows[0]):
        raise LayoutError("imagenet", solution, "expected columns ImageId,PredictionString")
    labels = {}
    for number, row in enumerate(rows, start=2):
        tokens = (row["PredictionString"] or "").split()
        if not tokens:
            raise LayoutError("imagenet", solution, f"line {number} has no wnid")
        labels[row["ImageId"]] = tokens[0]
    return labels


def _labels_from_ground_truth(ground_truth: Path, id_to_wnid: Mapping[int, str]) -> dict[str, str]:
    """{image id: wnid} from the devkit's ground truth (one ILSVRC2012 class id a line)."""
    lines = [line.strip() for line in ground_truth.read_text().splitlines() if line.strip()]
    labels = {}
    for number, value in enumerate(lines, start=1):
        class_id = int_field("imagenet", ground_truth, value)
        if class_id not in id_to_wnid:
            raise LayoutError("imagenet", ground_truth, f"line {number}: unknown id {value}")
        labels[f"ILSVRC2012_val_{number:08d}"] = id_to_wnid[class_id]
    return labels


def read_imagenet(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    image_dir = next((raw_dir / d for d in IMAGENET_IMAGE_DIRS if (raw_dir / d).is_dir()), None)
    if image_dir is None:
        raise LayoutError("imagenet", raw_dir, "no validation image folder found")
    solution = raw_dir / "LOC_val_solution.csv"
    ground_truth = _imagenet_find(
        raw_dir, IMAGENET_DEVKIT_DIRS, "ILSVRC2012_validation_ground_truth.txt"
    )
    meta = _imagenet_find(raw_dir, IMAGENET_DEVKIT_DIRS, "meta.mat")
    id_to_wnid, words = _imagenet_meta(meta) if meta else ({}, {})
    mapping = raw_dir / "LOC_synset_mapping.txt"
    if mapping.is_file():
        words = dict(read_rows("imagenet", mapping, 2))

    if solution.is_file():
        labels = _labels_from_solution(solution)
    elif ground_truth is not None:
        if not id_to_wnid:
            raise LayoutError("imagenet", raw_dir, "the devkit ground truth needs meta.mat")
        labels = _labels_from_ground_truth(ground_truth, id_to_wnid)
    else:
        raise LayoutError("imagenet", raw_dir, "no ground truth found")

    wnids = sorted(set(words) | set(labels.values()))
    names = dict(zip(wnids, _imagenet_class_names(wnids, words)))
    image_rel = rel(image_dir, raw_dir)
    labelled = (
        (f"{image_rel}/{image_id}.JPEG", names[wnid]) for image_id, wnid in sorted(labels.items())
    )
    return labelled_list(
        [names[w] for w in wnids],
        labelled,
        files_under(image_dir, raw_dir),
        "no ground-truth label for this file",
    )


LAYOUT_IMAGENET = Layout(
    read_imagenet,
    """\
<raw_dir>/
  ILSVRC2012_img_val/ILSVRC2012_val_00000001.JPEG ...   (or ILSVRC/Data/CLS-LOC/val/)
  and either the devkit ground truth:
    ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt   (one class id a line)
    ILSVRC2012_devkit_t12/data/meta.mat
  or the per-image solution CSV:
    LOC_val_solution.csv    (ImageId,PredictionString; first token is the wnid)
    LOC_synset_mapping.txt  (optional: "<wnid> <names>"; class names, else the wnid)""",
)
