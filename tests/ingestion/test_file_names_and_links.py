"""One rule for every reader (issue 16, finding 10): file names that are not valid UTF-8 and
symbolic links.

- A file (or folder) whose name is not valid UTF-8 is a reject, its path shown with the
  undecodable bytes escaped (`\\xe9`), never an UnicodeEncodeError that names no file.
- A symbolic link that resolves inside raw_dir is followed; one that leads outside raw_dir, is
  broken or loops is a reject with the reason, never followed silently nor skipped silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from builders.raw_files import cub200_tree, image, text

from cnn_feature_behavior.ingestion.index import build_index
from cnn_feature_behavior.ingestion.layouts import scan_layout

NON_UTF8 = b"caf\xe9.jpg"  # Latin-1 bytes: not valid UTF-8


def _caltech101(root: Path) -> None:
    for c in ("ant", "bee"):
        for i in (1, 2):
            image(root / "101_ObjectCategories" / c / f"image_000{i}.jpg")


def _caltech256(root: Path) -> None:
    for c in ("001.ak47", "002.bat"):
        for i in (1, 2):
            image(root / "256_ObjectCategories" / c / f"{c[:3]}_000{i}.jpg")


def _digits(root: Path) -> None:
    for c in ("0", "1"):
        for i in (1, 2):
            image(root / c / f"{c}{i}.png")


def _textures(root: Path) -> None:
    for c in ("banded", "dotted"):
        for i in (1, 2):
            image(root / "dtd" / "images" / c / f"{c}_000{i}.jpg")


def _cub200(root: Path) -> None:
    cub200_tree(root)
    image(root / "CUB_200_2011" / "images" / "002.Laysan_Albatross" / "b_2.jpg")


def _wood(root: Path) -> None:
    text(root / "labels.txt", "k/a.ppm sound\nk/b.ppm sound\nk/c.ppm dry\nk/d.ppm dry\n")
    for name in "abcd":
        image(root / "k" / f"{name}.ppm")


def _catsdogs(root: Path) -> None:
    text(
        root / "annotations" / "list.txt",
        "Abyssinian_1 1 1 1\nAbyssinian_2 1 1 1\nbeagle_1 2 2 1\nbeagle_2 2 2 2\n",
    )
    for name in ("Abyssinian_1", "Abyssinian_2", "beagle_1", "beagle_2"):
        image(root / "images" / f"{name}.jpg")


def _flowers102(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "imagelabels.mat", {"labels": np.array([[1, 1, 2, 2]])})
    for number in range(1, 5):
        image(root / "jpg" / f"image_{number:05d}.jpg")


def _imagefolder(root: Path) -> None:
    for c in ("ant", "bee"):
        for i in (1, 2):
            image(root / c / f"{c}{i}.jpg")


def _imagefolder_split(root: Path) -> None:
    for split in ("train", "test"):
        for c in ("ant", "bee"):
            for i in (1, 2):
                image(root / split / c / f"{c}{i}.jpg")


TREES: dict[str, Callable[[Path], None]] = {
    "caltech101": _caltech101,
    "caltech256": _caltech256,
    "digits": _digits,
    "textures": _textures,
    "cub200": _cub200,
    "wood": _wood,
    "catsdogs": _catsdogs,
    "flowers102": _flowers102,
    "imagefolder": _imagefolder,
    "imagefolder_split": _imagefolder_split,
}
# The trees of the same reader under another layout, and the reader they are read with.
READER = {"imagefolder_split": "imagefolder"}


def _all_paths(scan) -> list[str]:
    return [i.path for i in scan.images] + scan.missing + [p for p, _ in scan.unusable]


def _reasons(scan) -> dict[str, str]:
    return dict(scan.unusable)


@pytest.fixture(params=sorted(TREES))
def tree(request, tmp_path) -> tuple[str, Path, Path]:
    """(dataset, raw_dir, a folder outside raw_dir holding one image)."""
    raw_dir = tmp_path / "raw"
    TREES[request.param](raw_dir)
    outside = tmp_path / "elsewhere"
    image(outside / "foreign.jpg", colour=7)
    return READER.get(request.param, request.param), raw_dir, outside


def test_a_non_utf8_file_name_is_a_reject_with_the_name_escaped(tree):
    dataset, raw_dir, _ = tree
    first = scan_layout(dataset, raw_dir, {}).images[0].path
    folder = os.fsencode(raw_dir / first).rsplit(b"/", 1)[0]
    with open(folder + b"/" + NON_UTF8, "wb") as handle:
        handle.write((raw_dir / first).read_bytes())

    scan = scan_layout(dataset, raw_dir, {})

    shown = f"{Path(first).parent.as_posix()}/caf\\xe9.jpg"
    assert "not valid UTF-8" in _reasons(scan)[shown]
    for path in _all_paths(scan):
        path.encode("utf-8")  # every path can be stored and printed


def test_a_link_out_of_raw_dir_is_a_reject_with_the_reason(tree):
    dataset, raw_dir, outside = tree
    first = scan_layout(dataset, raw_dir, {}).images[0].path
    (raw_dir / first).unlink()
    (raw_dir / first).symlink_to(outside / "foreign.jpg")

    scan = scan_layout(dataset, raw_dir, {})

    assert first not in [i.path for i in scan.images]
    assert first not in scan.missing  # refused, with its reason, not "missing"
    assert "outside raw_dir" in _reasons(scan)[first]
    assert str(outside / "foreign.jpg") in _reasons(scan)[first]


def test_a_broken_link_is_a_reject_with_the_reason(tree):
    dataset, raw_dir, outside = tree
    first = scan_layout(dataset, raw_dir, {}).images[0].path
    (raw_dir / first).unlink()
    (raw_dir / first).symlink_to(raw_dir / "no-such-file.jpg")

    scan = scan_layout(dataset, raw_dir, {})

    assert "broken symbolic link" in _reasons(scan)[first]
    assert first not in scan.missing


def test_a_link_inside_raw_dir_is_followed(tree):
    dataset, raw_dir, _ = tree
    images = scan_layout(dataset, raw_dir, {}).images
    first, second = images[0].path, images[1].path
    (raw_dir / first).unlink()
    (raw_dir / first).symlink_to(raw_dir / second)

    scan = scan_layout(dataset, raw_dir, {})

    assert first in [i.path for i in scan.images]
    assert first not in _reasons(scan)


@pytest.mark.parametrize(
    "dataset", ["caltech101", "caltech256", "digits", "textures", "imagefolder"]
)
def test_a_class_folder_linked_from_outside_is_refused_and_one_inside_followed(dataset, tmp_path):
    raw_dir = tmp_path / "raw"
    TREES[dataset](raw_dir)
    first = scan_layout(dataset, raw_dir, {}).images[0].path
    root = (raw_dir / first).parent.parent
    (tmp_path / "elsewhere" / "zebra").mkdir(parents=True)
    image(tmp_path / "elsewhere" / "zebra" / "z1.jpg")
    (root / "zzz_outside").symlink_to(tmp_path / "elsewhere" / "zebra")
    (root / "zzz_inside").symlink_to((raw_dir / first).parent)
    (root / "zzz_loop").mkdir()
    (root / "zzz_loop" / "again").symlink_to(root)

    scan = scan_layout(dataset, raw_dir, {})

    outside_rel = (root / "zzz_outside").relative_to(raw_dir).as_posix()
    assert "outside raw_dir" in _reasons(scan)[outside_rel]
    assert all(not p.startswith(outside_rel + "/") for p in _all_paths(scan))
    inside = [i.path for i in scan.images if "/zzz_inside/" in f"/{i.path}"]
    assert len(inside) == 2  # the linked class folder is followed: its two images
    loop_rel = (root / "zzz_loop" / "again").relative_to(raw_dir).as_posix()
    assert "loop" in _reasons(scan)[loop_rel] or "nested folder" in _reasons(scan)[loop_rel]


def test_non_utf8_names_reach_the_rejects_table_and_parquet(tmp_path):
    raw_dir = tmp_path / "raw"
    _caltech101(raw_dir)
    folder = os.fsencode(raw_dir / "101_ObjectCategories" / "ant")
    with open(folder + b"/" + NON_UTF8, "wb") as handle:
        handle.write((raw_dir / "101_ObjectCategories" / "ant" / "image_0001.jpg").read_bytes())
    os.mkdir(os.fsencode(raw_dir / "101_ObjectCategories") + b"/b\xe4r")

    scan = scan_layout("caltech101", raw_dir, {})
    index, rejects = build_index(
        scan,
        raw_dir,
        dataset="caltech101",
        verify_images=True,
        allow_missing=False,
        max_images_per_class=None,
    )
    index.to_parquet(tmp_path / "index.parquet")
    rejects.to_parquet(tmp_path / "rejects.parquet")
    reasons = dict(zip(rejects["path"], rejects["reason"]))
    assert "not valid UTF-8" in reasons["101_ObjectCategories/ant/caf\\xe9.jpg"]
    assert "not valid UTF-8" in reasons["101_ObjectCategories/b\\xe4r"]
    assert len(index) == 4
