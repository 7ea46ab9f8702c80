"""Readers of the target datasets' official on-disk layouts.

Each reader turns a dataset's files under `raw_dir` into a `LayoutScan`: the labelled images
present on disk, the labelled images missing from it, and the files found that the layout cannot
use. Each image carries the dataset's official split (`train` or `test`, validation sets counted
as train) where the dataset ships split files, else None; the study itself merges the splits, as
in the paper. A `raw_dir` that does not match the layout, or split files that are malformed or do
not cover every labelled image, raise `LayoutError`, which names the path and shows the expected
layout. An optional class-names file (`class_names_file`) renames the classes.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import scipy.io

from cnn_feature_behavior.ingestion.class_names import class_names_from_file

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)
WOOD_CLASSES = ("sound", "dry", "edge", "leaf", "horn", "encased", "decayed")
TRAIN, TEST = "train", "test"
# DTD ships ten train/val/test splits, numbered 1..10.
TEXTURES_SPLIT_NUMBERS = range(1, 11)


class LayoutError(ValueError):
    """raw_dir does not hold the dataset's expected layout."""

    def __init__(self, dataset: str, path: Path | str, problem: str):
        super().__init__(
            f"{dataset}: {problem}: {path}\n"
            f"Expected layout of raw_dir for '{dataset}':\n{LAYOUTS[dataset].tree}"
        )


@dataclass(frozen=True)
class LabelledImage:
    path: str  # POSIX, relative to raw_dir
    class_name: str
    split: str | None = None  # official membership, `train` or `test`; None: no official split


@dataclass
class LayoutScan:
    """What a reader found under raw_dir."""

    class_names: list[str]  # every class the layout defines, in the dataset's own order
    images: list[LabelledImage]  # labelled images present on disk
    missing: list[str] = field(default_factory=list)  # labelled images absent from disk
    unusable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


@dataclass(frozen=True)
class Layout:
    read: Callable[[Path, Mapping[str, Any]], LayoutScan]
    tree: str


def scan_layout(dataset: str, raw_dir: Path | str, options: Mapping[str, Any]) -> LayoutScan:
    """Read `raw_dir` with the reader of `dataset`; `options` are its dataset-specific switches."""
    if dataset not in LAYOUTS:
        raise ValueError(f"Unknown dataset '{dataset}'; known datasets: {', '.join(LAYOUTS)}")
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise LayoutError(dataset, raw_dir, "raw_dir does not exist or is not a folder")
    scan = LAYOUTS[dataset].read(raw_dir, options)
    if len(set(scan.class_names)) != len(scan.class_names):
        raise LayoutError(dataset, raw_dir, "class names are not unique")
    names_file = options.get("class_names_file")
    if names_file is not None:
        scan = rename_classes(scan, class_names_file_path(raw_dir, names_file))
    return scan


def class_names_file_path(raw_dir: Path, names_file: Any) -> Path:
    """`dataset_source.class_names_file`: absolute, or relative to raw_dir."""
    if not isinstance(names_file, str) or not names_file.strip():
        raise ValueError(
            f"dataset_source.class_names_file must be a path (absolute, or relative to raw_dir) "
            f"or null, got {names_file!r}"
        )
    path = Path(names_file).expanduser()
    return path if path.is_absolute() else raw_dir / path


def rename_classes(scan: LayoutScan, names_file: Path) -> LayoutScan:
    """The scan with its classes renamed by `names_file` (format: ingestion/class_names.py)."""
    renamed = dict(zip(scan.class_names, class_names_from_file(names_file, scan.class_names)))
    logger.info("class names from %s", names_file)
    return LayoutScan(
        [renamed[c] for c in scan.class_names],
        [replace(image, class_name=renamed[image.class_name]) for image in scan.images],
        scan.missing,
        scan.unusable,
    )


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _rel(path: Path, raw_dir: Path) -> str:
    return path.relative_to(raw_dir).as_posix()


def _require_dir(dataset: str, path: Path) -> Path:
    if not path.is_dir():
        raise LayoutError(dataset, path, "expected folder not found")
    return path


def _require_file(dataset: str, path: Path) -> Path:
    if not path.is_file():
        raise LayoutError(dataset, path, "expected file not found")
    return path


def _is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def _not_image_reason(name: str) -> str:
    suffix = PurePosixPath(name).suffix or "(none)"
    return f"not an image file (suffix {suffix})"


def _files_under(folder: Path, raw_dir: Path) -> list[str]:
    """Every file below `folder`, as sorted POSIX paths relative to raw_dir."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(_rel(Path(root) / name, raw_dir) for name in files)
    return sorted(found)


def _read_rows(dataset: str, path: Path, n_fields: int) -> list[list[str]]:
    """Whitespace-separated rows of a list file; blank lines and `#` comments skipped."""
    rows = []
    with open(_require_file(dataset, path), encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split(maxsplit=n_fields - 1)
            if len(fields) != n_fields:
                raise LayoutError(
                    dataset, path, f"line {number} has {len(fields)} fields, expected {n_fields}"
                )
            rows.append(fields)
    return rows


def _int_field(dataset: str, path: Path, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise LayoutError(dataset, path, f"'{value}' is not an integer id") from None


def _labelled_list(
    class_names: list[str],
    labelled: Iterable[tuple[str, str]],
    on_disk: Iterable[str],
    unlisted_reason: str,
) -> LayoutScan:
    """Match (path, class_name) pairs from a label file against the files found on disk."""
    on_disk = set(on_disk)
    images, missing, listed = [], [], set()
    for path, class_name in labelled:
        listed.add(path)
        if path in on_disk:
            images.append(LabelledImage(path, class_name))
        else:
            missing.append(path)
    unusable = [(path, unlisted_reason) for path in sorted(on_disk - listed)]
    return LayoutScan(class_names, images, missing, unusable)


def _scan_class_folders(
    dataset: str,
    raw_dir: Path,
    root: Path,
    *,
    left_out: frozenset[str] = frozenset(),
    class_name: Callable[[str], str] = lambda folder: folder,
) -> LayoutScan:
    """`root/<class>/<image>`: one folder per class, classes in folder-name order."""
    _require_dir(dataset, root)
    class_names, images, unusable = [], [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir():
            unusable.append((_rel(Path(entry.path), raw_dir), "file outside any class folder"))
            continue
        if entry.name in left_out:
            n_files = len(_files_under(Path(entry.path), raw_dir))
            logger.info("%s: left out class folder %s (%d files)", dataset, entry.name, n_files)
            continue
        name = class_name(entry.name)
        class_names.append(name)
        for item in sorted(os.scandir(entry.path), key=lambda e: e.name):
            path = Path(item.path)
            if item.is_dir():
                unusable.extend(
                    (nested, "inside a nested folder; images sit directly in the class folder")
                    for nested in _files_under(path, raw_dir)
                )
            elif _is_image_name(item.name):
                images.append(LabelledImage(_rel(path, raw_dir), name))
            else:
                unusable.append((_rel(path, raw_dir), _not_image_reason(item.name)))
    if not class_names:
        raise LayoutError(dataset, root, "no class folders found")
    return LayoutScan(class_names, images, [], unusable)


def _mat_variable(dataset: str, path: Path, name: str, **options: Any) -> np.ndarray:
    """Variable `name` of a MATLAB file, or a LayoutError naming the file."""
    try:
        return scipy.io.loadmat(_require_file(dataset, path), **options)[name]
    except KeyError:
        raise LayoutError(dataset, path, f"no variable '{name}' in this .mat file") from None
    except (scipy.io.matlab.MatReadError, ValueError, TypeError, OSError) as error:
        raise LayoutError(dataset, path, f"not a readable .mat file ({error})") from None


def _strip_number_prefix(folder: str) -> str:
    """`001.Black_footed_Albatross` -> `Black_footed_Albatross`."""
    return folder.split(".", 1)[1] if re.match(r"^\d+\.", folder) else folder


# ---------------------------------------------------------------------------------------------
# Official splits


def _split_files_present(dataset: str, files: Iterable[Path]) -> bool:
    """True when every file of a split set is present, False when none is; a partial set is an
    error (the split it describes would be one-sided)."""
    files = list(files)
    present = [f for f in files if f.is_file()]
    if not present:
        logger.info(
            "%s: no official split files (%s): the index's split column is null",
            dataset,
            ", ".join(f.name for f in files),
        )
        return False
    absent = [f for f in files if not f.is_file()]
    if absent:
        raise LayoutError(
            dataset,
            absent[0],
            f"split file missing while {', '.join(f.name for f in present)} is present "
            "(give the whole set of split files, or none)",
        )
    return True


def _split_membership(
    dataset: str, lists: Iterable[tuple[str, Path, Iterable[str]]]
) -> dict[str, str]:
    """{path: split} from (split, file, paths) lists; a path in two splits is an error."""
    membership: dict[str, str] = {}
    source: dict[str, Path] = {}
    for split, path, entries in lists:
        for entry in entries:
            previous = membership.setdefault(entry, split)
            if previous != split:
                raise LayoutError(
                    dataset,
                    path,
                    f"{entry} is listed in both the {previous} split ({source[entry].name}) "
                    f"and the {split} split",
                )
            source.setdefault(entry, path)
    return membership


def _with_splits(
    dataset: str, scan: LayoutScan, membership: Mapping[str, str], files: Iterable[Path]
) -> LayoutScan:
    """The scan with each image's official split; every labelled image on disk needs one.

    The official split files of every dataset here cover all of its labelled images, so an image
    in none of them means split files that do not belong to these images: an error, not a guess.
    """
    named = ", ".join(str(f) for f in files)
    unsplit = [image.path for image in scan.images if image.path not in membership]
    if unsplit:
        raise LayoutError(
            dataset,
            named,
            f"{len(unsplit)} of the {len(scan.images)} labelled images on disk are in no split "
            f"file (e.g. {', '.join(unsplit[:3])}); split files from another release? Remove "
            "them to index without an official split",
        )
    known = {image.path for image in scan.images}.union(scan.missing)
    stray = [path for path in membership if path not in known]
    if stray:
        logger.warning(
            "%s: %d entries of the split files name no labelled image on disk (e.g. %s); left out",
            dataset,
            len(stray),
            ", ".join(stray[:3]),
        )
    images = [replace(image, split=membership[image.path]) for image in scan.images]
    n_train = sum(image.split == TRAIN for image in images)
    logger.info(
        "%s: official split from %s: %d train, %d test",
        dataset,
        named,
        n_train,
        len(images) - n_train,
    )
    return LayoutScan(scan.class_names, images, scan.missing, scan.unusable)


def _read_image_paths(dataset: str, path: Path) -> list[str]:
    """`<folder>/<image>` lines of a split list (blank lines skipped)."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        parts = PurePosixPath(entry).parts
        if len(parts) != 2 or entry.startswith("/") or not _is_image_name(entry):
            raise LayoutError(
                dataset, path, f"line {number}: '{entry}' is not a <folder>/<image> path"
            )
        entries.append(entry)
    return entries


def _mat_image_numbers(dataset: str, path: Path, name: str, n_images: int) -> list[int]:
    """Variable `name` of a .mat file as image numbers 1..n_images."""
    values = np.ravel(_mat_variable(dataset, path, name))
    try:
        numbers = values.astype(float)
    except (TypeError, ValueError):
        numbers = np.array([np.nan])
    if numbers.size and (
        not np.all(np.isfinite(numbers))
        or np.any(numbers != np.round(numbers))
        or numbers.min() < 1
        or numbers.max() > n_images
    ):
        raise LayoutError(
            dataset, path, f"'{name}' holds values that are not image numbers 1..{n_images}"
        )
    return [int(n) for n in numbers]


def _mat_strings(dataset: str, path: Path, name: str) -> list[str]:
    """Variable `name` of a .mat file as strings: a cell array of strings or a char matrix."""
    values = _mat_variable(dataset, path, name)
    if values.dtype.kind == "U":
        return [str(v).strip() for v in np.ravel(values)]
    strings = []
    for number, cell in enumerate(np.ravel(values), start=1):
        item = np.ravel(cell) if isinstance(cell, np.ndarray) else np.array([cell])
        if item.size != 1 or not isinstance(item[0], str):
            raise LayoutError(
                dataset, path, f"entry {number} of '{name}' is not a string ({cell!r})"
            )
        strings.append(item[0].strip())
    return strings


# ---------------------------------------------------------------------------------------------
# Readers, one per dataset

IMAGENET_IMAGE_DIRS = ("ILSVRC2012_img_val", "ILSVRC/Data/CLS-LOC/val")
IMAGENET_DEVKIT_DIRS = ("ILSVRC2012_devkit_t12/data", ".")


def _imagenet_find(raw_dir: Path, folders: Iterable[str], name: str) -> Path | None:
    return next((raw_dir / f / name for f in folders if (raw_dir / f / name).is_file()), None)


def _imagenet_meta(meta_path: Path) -> tuple[dict[int, str], dict[str, str]]:
    """meta.mat -> ({ILSVRC2012_ID: wnid}, {wnid: words}) for the 1,000 leaf classes."""
    synsets = np.atleast_1d(_mat_variable("imagenet", meta_path, "synsets", squeeze_me=True))
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
        words = dict(_read_rows("imagenet", mapping, 2))

    if solution.is_file():
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
    elif ground_truth is not None:
        if not id_to_wnid:
            raise LayoutError("imagenet", raw_dir, "the devkit ground truth needs meta.mat")
        lines = [line.strip() for line in ground_truth.read_text().splitlines() if line.strip()]
        labels = {}
        for number, value in enumerate(lines, start=1):
            class_id = _int_field("imagenet", ground_truth, value)
            if class_id not in id_to_wnid:
                raise LayoutError("imagenet", ground_truth, f"line {number}: unknown id {value}")
            labels[f"ILSVRC2012_val_{number:08d}"] = id_to_wnid[class_id]
    else:
        raise LayoutError("imagenet", raw_dir, "no ground truth found")

    wnids = sorted(set(words) | set(labels.values()))
    names = dict(zip(wnids, _imagenet_class_names(wnids, words)))
    image_rel = _rel(image_dir, raw_dir)
    labelled = (
        (f"{image_rel}/{image_id}.JPEG", names[wnid]) for image_id, wnid in sorted(labels.items())
    )
    return _labelled_list(
        [names[w] for w in wnids],
        labelled,
        _files_under(image_dir, raw_dir),
        "no ground-truth label for this file",
    )


def read_cub200(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    root = _require_dir("cub200", raw_dir / "CUB_200_2011")
    images_dir = _require_dir("cub200", root / "images")
    classes = {
        _int_field("cub200", root / "classes.txt", i): _strip_number_prefix(folder)
        for i, folder in _read_rows("cub200", root / "classes.txt", 2)
    }
    image_paths = {i: p for i, p in _read_rows("cub200", root / "images.txt", 2)}
    image_labels = dict(_read_rows("cub200", root / "image_class_labels.txt", 2))
    labelled = []
    for image_id, rel_path in image_paths.items():
        if image_id not in image_labels:
            raise LayoutError(
                "cub200", root / "image_class_labels.txt", f"no label for image id {image_id}"
            )
        class_id = _int_field("cub200", root / "image_class_labels.txt", image_labels[image_id])
        if class_id not in classes:
            raise LayoutError("cub200", root / "classes.txt", f"unknown class id {class_id}")
        labelled.append((f"CUB_200_2011/images/{rel_path}", classes[class_id]))
    scan = _labelled_list(
        [classes[i] for i in sorted(classes)],
        labelled,
        _files_under(images_dir, raw_dir),
        "not listed in images.txt",
    )
    split_file = root / "train_test_split.txt"
    if not _split_files_present("cub200", [split_file]):
        return scan
    membership = {}
    for image_id, is_training in _read_rows("cub200", split_file, 2):
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
    return _with_splits("cub200", scan, membership, [split_file])


def read_wood(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    label_file = raw_dir / "labels.txt"
    labelled = []
    for rel_path, class_name in _read_rows("wood", label_file, 2):
        if class_name.lower() not in WOOD_CLASSES:
            raise LayoutError("wood", label_file, f"unknown class '{class_name}' for {rel_path}")
        labelled.append((PurePosixPath(rel_path).as_posix(), class_name.lower()))
    on_disk = [p for p in _files_under(raw_dir, raw_dir) if _is_image_name(p)]
    return _labelled_list(list(WOOD_CLASSES), labelled, on_disk, "not in labels.txt")


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


def read_caltech101(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    # BACKGROUND_Google is clutter, not an object class.
    return _scan_class_folders(
        "caltech101",
        raw_dir,
        raw_dir / "101_ObjectCategories",
        left_out=frozenset({"BACKGROUND_Google"}),
    )


def read_mit67(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    scan = _scan_class_folders("mit67", raw_dir, raw_dir / "Images")
    split_files = [raw_dir / "TrainImages.txt", raw_dir / "TestImages.txt"]
    if not _split_files_present("mit67", split_files):
        logger.warning(
            "mit67: TrainImages.txt/TestImages.txt not in %s: indexing every image under Images/ "
            "(%d); the paper's 6,700 images are those two lists",
            raw_dir,
            len(scan.images),
        )
        return scan
    membership = _split_membership(
        "mit67",
        [
            (split, f, [f"Images/{entry}" for entry in _read_image_paths("mit67", f)])
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
    return _with_splits(
        "mit67",
        LayoutScan(scan.class_names, images, missing, scan.unusable),
        membership,
        split_files,
    )


def read_textures(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    scan = _scan_class_folders("textures", raw_dir, raw_dir / "dtd" / "images")
    number = options.get("split_number", 1)
    if isinstance(number, bool) or number not in TEXTURES_SPLIT_NUMBERS:
        raise ValueError(
            "textures: dataset_source.split_number must be one of DTD's splits 1..10, "
            f"got {number!r} (conf/textures/parameters.yml)"
        )
    labels = raw_dir / "dtd" / "labels"
    split_files = [labels / f"{name}{number}.txt" for name in ("train", "val", "test")]
    if not _split_files_present("textures", split_files):
        return scan
    # The validation list is training data here, as every split's validation set.
    lists = [
        (split, f, [f"dtd/images/{entry}" for entry in _read_image_paths("textures", f)])
        for split, f in zip((TRAIN, TRAIN, TEST), split_files)
    ]
    return _with_splits("textures", scan, _split_membership("textures", lists), split_files)


def read_caltech256(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    # 257.clutter is clutter, not an object class.
    return _scan_class_folders(
        "caltech256",
        raw_dir,
        raw_dir / "256_ObjectCategories",
        left_out=frozenset({"257.clutter"}),
        class_name=_strip_number_prefix,
    )


def read_stanforddogs(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    scan = _scan_class_folders(
        "stanforddogs",
        raw_dir,
        raw_dir / "Images",
        class_name=lambda folder: folder.split("-", 1)[-1],
    )
    split_files = [raw_dir / "train_list.mat", raw_dir / "test_list.mat"]
    if not _split_files_present("stanforddogs", split_files):
        return scan
    lists = []
    for split, f in zip((TRAIN, TEST), split_files):
        entries = _mat_strings("stanforddogs", f, "file_list")
        for number, entry in enumerate(entries, start=1):
            if len(PurePosixPath(entry).parts) != 2 or not _is_image_name(entry):
                raise LayoutError(
                    "stanforddogs",
                    f,
                    f"file_list entry {number}: '{entry}' is not a <n<wnid>-<breed>>/<image> path",
                )
        lists.append((split, f, [f"Images/{entry}" for entry in entries]))
    return _with_splits("stanforddogs", scan, _split_membership("stanforddogs", lists), split_files)


def read_catsdogs(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    image_dir = _require_dir("catsdogs", raw_dir / "images")
    list_file = raw_dir / "annotations" / "list.txt"
    breeds: dict[int, str] = {}
    labelled = []
    for name, class_id, _species, _breed_id in _read_rows("catsdogs", list_file, 4):
        breed = name.rsplit("_", 1)[0]
        class_number = _int_field("catsdogs", list_file, class_id)
        if breeds.setdefault(class_number, breed) != breed:
            raise LayoutError(
                "catsdogs",
                list_file,
                f"class id {class_id} names both {breeds[class_number]} and {breed}",
            )
        labelled.append((f"images/{name}.jpg", breed))
    on_disk = _files_under(image_dir, raw_dir)
    scan = _labelled_list(
        [breeds[i] for i in sorted(breeds)],
        labelled,
        [p for p in on_disk if _is_image_name(p)],
        "not listed in annotations/list.txt",
    )
    scan.unusable += [(p, _not_image_reason(p)) for p in on_disk if not _is_image_name(p)]
    split_files = [raw_dir / "annotations" / "trainval.txt", raw_dir / "annotations" / "test.txt"]
    if not _split_files_present("catsdogs", split_files):
        return scan
    lists = []
    for split, f in zip((TRAIN, TEST), split_files):
        rows = _read_rows("catsdogs", f, 4)
        for _name, class_id, _species, _breed_id in rows:
            _int_field("catsdogs", f, class_id)
        lists.append((split, f, [f"images/{row[0]}.jpg" for row in rows]))
    return _with_splits("catsdogs", scan, _split_membership("catsdogs", lists), split_files)


def read_food101(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    root = _require_dir("food101", raw_dir / "food-101")
    scan = _scan_class_folders("food101", raw_dir, root / "images")
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
    for (entry,) in _read_rows("food101", test_list, 1):
        class_name = entry.split("/", 1)[0]
        if class_name not in class_names:
            raise LayoutError("food101", test_list, f"unknown class in '{entry}'")
        labelled.append((f"food-101/images/{entry}.jpg", class_name))
    on_disk = {image.path for image in scan.images}
    images = [LabelledImage(path, name) for path, name in labelled if path in on_disk]
    missing = [path for path, _ in labelled if path not in on_disk]
    logger.info("food101: left out %d images outside the test split", len(on_disk) - len(images))
    return LayoutScan(class_names, images, missing, scan.unusable)


def read_digits(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    return _scan_class_folders("digits", raw_dir, raw_dir)


LAYOUTS: dict[str, Layout] = {
    "imagenet": Layout(
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
    ),
    "cub200": Layout(
        read_cub200,
        """\
<raw_dir>/
  CUB_200_2011/
    images.txt              ("<image_id> <class_folder>/<file>.jpg")
    image_class_labels.txt  ("<image_id> <class_id>")
    classes.txt             ("<class_id> <NNN.Class_name>")
    train_test_split.txt    (optional: "<image_id> <is_training_image>", 1 train, 0 test)
    images/<NNN.Class_name>/<file>.jpg""",
    ),
    "wood": Layout(
        read_wood,
        """\
<raw_dir>/
  labels.txt     ("<image path relative to raw_dir> <class>" a line; '#' comments allowed;
                  class: sound, dry, edge, leaf, horn, encased or decayed)
  knot0001.ppm ...  (the Oulu knot images, anywhere below raw_dir)""",
    ),
    "flowers102": Layout(
        read_flowers102,
        """\
<raw_dir>/
  imagelabels.mat   (labels: 1..102, one per image, in image number order)
  setid.mat         (optional: the official split; trnid and valid are train, tstid test)
  jpg/image_00001.jpg ... image_08189.jpg""",
    ),
    "caltech101": Layout(
        read_caltech101,
        """\
<raw_dir>/
  101_ObjectCategories/<class>/image_NNNN.jpg   (BACKGROUND_Google is left out)""",
    ),
    "mit67": Layout(
        read_mit67,
        """\
<raw_dir>/
  Images/<class>/<image>.jpg
  TrainImages.txt, TestImages.txt   (optional: "<class>/<image>.jpg" lines; when present only
                                     these images are indexed, as in the paper, with their
                                     split)""",
    ),
    "textures": Layout(
        read_textures,
        """\
<raw_dir>/
  dtd/images/<class>/<class>_NNNN.jpg
  dtd/labels/train<k>.txt, val<k>.txt, test<k>.txt   (optional: "<class>/<image>.jpg" lines;
      split k = dataset_source.split_number, 1 by default; train and val are train)""",
    ),
    "caltech256": Layout(
        read_caltech256,
        """\
<raw_dir>/
  256_ObjectCategories/<NNN.name>/<image>.jpg   (257.clutter is left out)""",
    ),
    "stanforddogs": Layout(
        read_stanforddogs,
        """\
<raw_dir>/
  Images/n<wnid>-<breed>/<image>.jpg
  train_list.mat, test_list.mat   (optional: the official split; variable file_list, a cell
                                   array of "n<wnid>-<breed>/<image>.jpg" paths under Images/)""",
    ),
    "catsdogs": Layout(
        read_catsdogs,
        """\
<raw_dir>/
  annotations/list.txt   ("<Breed_name>_<n> <class_id> <species> <breed_id>" lines)
  annotations/trainval.txt, annotations/test.txt   (optional: the official split, lines as in
                                                    list.txt)
  images/<Breed_name>_<n>.jpg""",
    ),
    "food101": Layout(
        read_food101,
        """\
<raw_dir>/
  food-101/
    images/<class>/<id>.jpg
    meta/test.txt      ("<class>/<id>" lines: the test split, the only one indexed)
    meta/classes.txt   (optional: class order, else folder-name order)""",
    ),
    "digits": Layout(
        read_digits,
        """\
<raw_dir>/
  <digit>/<index>.png   (written from scikit-learn's bundled digits when raw_dir is absent
                         or empty)""",
    ),
}
