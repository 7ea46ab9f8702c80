"""The `imagefolder` reader (a user's own class-per-folder images) on trees built here."""

from __future__ import annotations

import pytest
from builders.raw_files import image, text

from cnn_feature_behavior.ingestion.index import build_index
from cnn_feature_behavior.ingestion.layouts import scan_layout
from cnn_feature_behavior.ingestion.readers import LAYOUTS
from cnn_feature_behavior.ingestion.readers.base import LayoutError

# The suffixes the issue names, in several cases; each is written in its own format.
FORMATS = {
    "a.jpg": "JPEG",
    "b.JPEG": "JPEG",
    "c.png": "PNG",
    "d.Bmp": "BMP",
    "e.GIF": "GIF",
    "f.tif": "TIFF",
    "g.TIFF": "TIFF",
    "h.webp": "WEBP",
}


def by_class(scan) -> dict[str, list[tuple[str, str | None]]]:
    grouped: dict[str, list[tuple[str, str | None]]] = {}
    for item in scan.images:
        grouped.setdefault(item.class_name, []).append((item.path, item.split))
    return {name: sorted(paths) for name, paths in grouped.items()}


def test_class_folders_with_every_suffix_in_any_case(tmp_path):
    for name, fmt in FORMATS.items():
        image(tmp_path / "zebra" / name, fmt=fmt)
    image(tmp_path / "Ant" / "1.jpg")
    image(tmp_path / "Ant" / "2.jpg")
    image(tmp_path / "Ant" / "closeups" / "3.png")  # below a class folder: still the class's
    text(tmp_path / "Ant" / "notes.txt", "no image")
    text(tmp_path / "README.md", "a file at the top level")
    text(tmp_path / ".DS_Store", "hidden")
    image(tmp_path / ".ipynb_checkpoints" / "x.jpg")  # a hidden folder is no class

    scan = scan_layout("imagefolder", tmp_path, {})

    assert scan.class_names == ["Ant", "zebra"]  # folder-name (code point) order
    assert by_class(scan) == {
        "Ant": [("Ant/1.jpg", None), ("Ant/2.jpg", None), ("Ant/closeups/3.png", None)],
        "zebra": [(f"zebra/{name}", None) for name in sorted(FORMATS)],
    }
    assert dict(scan.unusable) == {
        ".DS_Store": "hidden (name starts with '.'), not indexed",
        ".ipynb_checkpoints": "hidden (name starts with '.'), not indexed",
        "Ant/notes.txt": "not an image file (suffix .txt)",
        "README.md": "file outside any class folder",
    }
    assert not scan.missing


def test_every_suffix_decodes_through_the_index(tmp_path):
    for name, fmt in FORMATS.items():
        image(tmp_path / "zebra" / name, fmt=fmt)
        image(tmp_path / "ant" / name, fmt=fmt)
    scan = scan_layout("imagefolder", tmp_path, {})
    index, rejects = build_index(
        scan,
        tmp_path,
        dataset="imagefolder",
        verify_images=True,
        allow_missing=False,
        max_images_per_class=None,
    )
    assert len(index) == 16 and rejects.empty
    assert index["split"].isna().all()


def test_split_folders_keep_the_split_and_val_trains(tmp_path):
    image(tmp_path / "train" / "cat" / "1.jpg")
    image(tmp_path / "train" / "dog" / "1.jpg")
    image(tmp_path / "val" / "cat" / "2.jpg")
    image(tmp_path / "val" / "bird" / "1.jpg")  # a class trained from val/ alone
    image(tmp_path / "Test" / "cat" / "3.jpg")  # split folders in any case
    image(tmp_path / "Test" / "bird" / "2.jpg")
    text(tmp_path / "train" / "list.csv", "a file directly in a split folder")

    scan = scan_layout("imagefolder", tmp_path, {})

    assert scan.class_names == ["bird", "cat", "dog"]
    assert by_class(scan) == {
        "bird": [("Test/bird/2.jpg", "test"), ("val/bird/1.jpg", "train")],
        "cat": [
            ("Test/cat/3.jpg", "test"),
            ("train/cat/1.jpg", "train"),
            ("val/cat/2.jpg", "train"),
        ],
        "dog": [("train/dog/1.jpg", "train")],  # no test image: allowed, it goes unmeasured
    }
    assert dict(scan.unusable) == {"train/list.csv": "file outside any class folder"}


def test_split_layout_feeds_the_official_split_of_the_index(tmp_path):
    for split, names in (("train", "12"), ("test", "3")):
        for name in names:
            image(tmp_path / split / "cat" / f"{name}.jpg")
            image(tmp_path / split / "dog" / f"{name}.jpg")
    scan = scan_layout("imagefolder", tmp_path, {})
    index, _ = build_index(
        scan,
        tmp_path,
        dataset="imagefolder",
        verify_images=False,
        allow_missing=False,
        max_images_per_class=None,
    )
    assert index.set_index("path")["split"].to_dict() == {
        "test/cat/3.jpg": "test",
        "train/cat/1.jpg": "train",
        "train/cat/2.jpg": "train",
        "test/dog/3.jpg": "test",
        "train/dog/1.jpg": "train",
        "train/dog/2.jpg": "train",
    }
    # The same file name in two splits is two images.
    assert index["image_id"].is_unique


def test_an_empty_class_is_listed_and_left_out_at_indexing(tmp_path):
    image(tmp_path / "cat" / "1.jpg")
    image(tmp_path / "cat" / "2.jpg")
    image(tmp_path / "dog" / "1.jpg")
    image(tmp_path / "dog" / "2.jpg")
    (tmp_path / "empty").mkdir()
    text(tmp_path / "notes" / "readme.txt", "no image")

    scan = scan_layout("imagefolder", tmp_path, {})
    assert scan.class_names == ["cat", "dog", "empty", "notes"]
    reasons = dict(scan.unusable)
    assert reasons["empty/"] == reasons["notes/"] == "class folder holds no image file"

    index, rejects = build_index(
        scan,
        tmp_path,
        dataset="imagefolder",
        verify_images=False,
        allow_missing=False,
        max_images_per_class=None,
    )
    assert sorted(index["class_name"].unique()) == ["cat", "dog"]
    assert "empty/" in set(rejects["path"])


def test_a_class_in_test_but_not_in_train_is_an_error_naming_the_folder(tmp_path):
    image(tmp_path / "train" / "cat" / "1.jpg")
    image(tmp_path / "test" / "cat" / "2.jpg")
    image(tmp_path / "test" / "wolf" / "1.jpg")
    (tmp_path / "train" / "wolf").mkdir()  # an empty training folder does not train it
    with pytest.raises(LayoutError) as error:
        scan_layout("imagefolder", tmp_path, {})
    message = str(error.value)
    assert str(tmp_path / "test" / "wolf") in message
    assert "class 'wolf' has test images but no training image" in message


def test_a_mix_of_split_and_class_folders_is_an_error(tmp_path):
    image(tmp_path / "train" / "cat" / "1.jpg")
    image(tmp_path / "test" / "cat" / "2.jpg")
    image(tmp_path / "dog" / "1.jpg")
    with pytest.raises(LayoutError) as error:
        scan_layout("imagefolder", tmp_path, {})
    message = str(error.value)
    assert str(tmp_path) in message
    assert "a mix of split folders (test, train) and class folders (dog)" in message
    assert LAYOUTS["imagefolder"].tree in message


@pytest.mark.parametrize(
    ("folders", "problem"),
    [
        (("train", "val"), "split folders without test/"),
        (("test",), r"split folders without train/ \(found test/\)"),
        (("train", "Train", "test"), "split folders differing only in case"),
    ],
)
def test_an_incomplete_split_layout_is_an_error(tmp_path, folders, problem):
    for number, folder in enumerate(folders):
        image(tmp_path / folder / "cat" / f"{number}.jpg")
    with pytest.raises(LayoutError, match=problem) as error:
        scan_layout("imagefolder", tmp_path, {})
    assert str(tmp_path) in str(error.value)


def test_files_only_is_a_layout_error(tmp_path):
    image(tmp_path / "1.jpg")
    with pytest.raises(LayoutError, match="no class folders found"):
        scan_layout("imagefolder", tmp_path, {})


def test_a_second_image_folder_reads_under_its_own_name(tmp_path):
    image(tmp_path / "cat" / "1.jpg")
    image(tmp_path / "dog" / "1.jpg")
    scan = scan_layout("my_photos", tmp_path, {"layout": "imagefolder"})
    assert scan.class_names == ["cat", "dog"]
    with pytest.raises(ValueError, match="Unknown dataset_source.layout 'imagefolders'"):
        scan_layout("my_photos", tmp_path, {"layout": "imagefolders"})
    with pytest.raises(LayoutError, match="imagefolder: raw_dir does not exist"):
        scan_layout("my_photos", tmp_path / "absent", {"layout": "imagefolder"})
