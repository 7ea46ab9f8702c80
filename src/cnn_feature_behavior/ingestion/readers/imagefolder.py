"""A user's own images: one folder per class, optionally inside train / val / test folders.

Two layouts, told apart by the folders directly under raw_dir:
- `<raw_dir>/<class>/<image>`: no official split (the transfer evaluation draws seeded ones);
- `<raw_dir>/{train,val,test}/<class>/<image>`: each image keeps its folder's split, `val`
  counted as train (as every reader counts a validation set). `train/` and `test/` are needed.
Split folder names are recognised in any case (`Train/` is a split folder, not a class).

Class names are the class folders' names, in folder-name order (the union over the splits).
Images anywhere below a class folder belong to it, as in torchvision's `ImageFolder`.
Names starting with `.` (`.DS_Store`, `.ipynb_checkpoints/`) are hidden: listed as unusable,
never a class. Rejects and errors follow the other readers: a file directly under raw_dir (or
directly under a split folder) is unusable ("file outside any class folder"), as is a file that
is no image; a class folder holding no image is listed (the class is left out at indexing, like
any class with fewer than two images); a mix of split and class folders, a split layout without
`train/` or `test/`, and a class with test images but no training image are `LayoutError`s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cnn_feature_behavior.ingestion.readers.base import (
    TEST,
    TRAIN,
    Entry,
    LabelledImage,
    Layout,
    LayoutError,
    LayoutScan,
    entries,
    files_under,
    is_image_name,
    not_image_reason,
    rel,
)

DATASET = "imagefolder"
# Folder name (lower case) -> the split its images get; validation images train.
SPLIT_FOLDERS = {"train": TRAIN, "val": TRAIN, "test": TEST}
HIDDEN_REASON = "hidden (name starts with '.'), not indexed"
EMPTY_CLASS_REASON = "class folder holds no image file"


@dataclass
class _Found:
    """Images by class (folder-name order kept by the caller) and the files refused, with why."""

    images: dict[str, list[LabelledImage]] = field(default_factory=dict)
    unusable: list[tuple[str, str]] = field(default_factory=list)


def read_imagefolder(raw_dir: Path, options: Mapping[str, Any]) -> LayoutScan:
    found = _Found()
    folders = _visible_folders(raw_dir, raw_dir, found)
    splits = _split_folders(raw_dir, folders)
    if splits is None:
        _scan_classes(raw_dir, folders, None, found)
    else:
        for folder in folders:
            inside = _visible_folders(folder.path, raw_dir, found)
            _scan_classes(raw_dir, inside, splits[folder.name.lower()], found)
        _check_trained(raw_dir, folders, found)
    if not found.images:
        raise LayoutError(DATASET, raw_dir, "no class folders found")
    class_names = sorted(found.images)
    images = [image for name in class_names for image in found.images[name]]
    return LayoutScan(class_names, images, [], found.unusable)


def _visible_folders(folder: Path, raw_dir: Path, found: _Found) -> list[Entry]:
    """The folders directly in `folder`; its files, hidden entries and refused links go to the
    unusable files."""
    kept, refused = entries(folder, raw_dir)
    found.unusable += refused
    folders = []
    for entry in kept:
        if entry.name.startswith("."):
            found.unusable.append((rel(entry.path, raw_dir), HIDDEN_REASON))
        elif entry.is_dir:
            folders.append(entry)
        else:
            found.unusable.append((rel(entry.path, raw_dir), "file outside any class folder"))
    return folders


def _split_folders(raw_dir: Path, folders: Sequence[Entry]) -> dict[str, str] | None:
    """{split folder name (lower case): split} for the split layout, None for class folders."""
    split_names = [f.name for f in folders if f.name.lower() in SPLIT_FOLDERS]
    if not split_names:
        return None
    classes = [f.name for f in folders if f.name.lower() not in SPLIT_FOLDERS]
    if classes:
        raise LayoutError(
            DATASET,
            raw_dir,
            f"a mix of split folders ({', '.join(split_names)}) and class folders "
            f"({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}); put every class "
            "folder inside train/ and test/ (val/ optional), or use no split folder at all",
        )
    lowered = [name.lower() for name in split_names]
    if len(set(lowered)) < len(lowered):
        raise LayoutError(
            DATASET, raw_dir, f"split folders differing only in case: {', '.join(split_names)}"
        )
    absent = [name for name in ("train", "test") if name not in lowered]
    if absent:
        raise LayoutError(
            DATASET,
            raw_dir,
            f"split folders without {' and '.join(f'{name}/' for name in absent)} (found "
            f"{', '.join(f'{name}/' for name in split_names)}): the split layout needs train/ "
            "and test/, val/ is optional and counts as train",
        )
    return {name: SPLIT_FOLDERS[name] for name in lowered}


def _scan_classes(
    raw_dir: Path, folders: Sequence[Entry], split: str | None, found: _Found
) -> None:
    """Every image below each class folder, recursively; other files are unusable."""
    for folder in folders:
        prefix = rel(folder.path, raw_dir)
        listing = files_under(folder.path, raw_dir)
        found.unusable += listing.refused
        images = found.images.setdefault(folder.name, [])
        n_before = len(images)
        for path in listing.files:
            inner = PurePosixPath(path).relative_to(prefix)
            if any(part.startswith(".") for part in inner.parts):
                found.unusable.append((path, HIDDEN_REASON))
            elif is_image_name(inner.name):
                images.append(LabelledImage(path, folder.name, split))
            else:
                found.unusable.append((path, not_image_reason(inner.name)))
        if len(images) == n_before:
            found.unusable.append((f"{prefix}/", EMPTY_CLASS_REASON))


def _check_trained(raw_dir: Path, folders: Sequence[Entry], found: _Found) -> None:
    """A class with test images needs training images: it could not be learnt otherwise."""
    test_folder = next(f for f in folders if SPLIT_FOLDERS[f.name.lower()] == TEST)
    for name, images in found.images.items():
        splits = {image.split for image in images}
        if TEST in splits and TRAIN not in splits:
            raise LayoutError(
                DATASET,
                test_folder.path / name,
                f"class '{name}' has test images but no training image (no image in a train/ "
                "or val/ folder of that name); a class must be learnt before it is tested",
            )


LAYOUT_IMAGEFOLDER = Layout(
    read_imagefolder,
    """\
<raw_dir>/<class>/<image>          one folder per class (images in its subfolders belong to it)
or, with a split kept for the transfer evaluation:
<raw_dir>/train/<class>/<image>
<raw_dir>/val/<class>/<image>      (optional, counts as train)
<raw_dir>/test/<class>/<image>     (every class here needs training images)
images: .jpg .jpeg .png .bmp .gif .tif .tiff .webp .ppm .pgm .pbm, in any case""",
)
