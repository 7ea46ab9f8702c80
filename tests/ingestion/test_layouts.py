"""Each dataset reader on a small tree the test builds in its official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from builders.raw_files import cub200_tree, image, text

from cnn_feature_behavior.ingestion.layouts import scan_layout
from cnn_feature_behavior.ingestion.readers import LAYOUTS
from cnn_feature_behavior.ingestion.readers.base import LayoutError
from cnn_feature_behavior.ingestion.readers.wood import WOOD_CLASSES


def paths_by_class(scan) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for item in scan.images:
        grouped.setdefault(item.class_name, []).append(item.path)
    return {c: sorted(p) for c, p in grouped.items()}


@pytest.mark.parametrize("dataset", sorted(LAYOUTS))
def test_missing_raw_dir_names_the_path_and_shows_the_layout(tmp_path, dataset):
    raw_dir = tmp_path / "nowhere" / dataset
    with pytest.raises(LayoutError) as error:
        scan_layout(dataset, raw_dir, {})
    message = str(error.value)
    assert str(raw_dir) in message
    assert "does not exist" in message
    assert LAYOUTS[dataset].tree in message


@pytest.mark.parametrize("dataset", sorted(set(LAYOUTS) - {"digits"}))
def test_empty_raw_dir_is_a_layout_mismatch(tmp_path, dataset):
    with pytest.raises(LayoutError) as error:
        scan_layout(dataset, tmp_path, {})
    assert str(tmp_path) in str(error.value)
    assert "Expected layout" in str(error.value)


ARCHIVES = [{"url": "https://example.org/102flowers.tgz", "sha256": "ab" * 32}]


@pytest.mark.parametrize("present", [False, True])
def test_a_missing_dataset_that_can_be_downloaded_says_how(tmp_path, present):
    raw_dir = tmp_path / "flowers102"
    if present:
        raw_dir.mkdir()  # an empty folder: nothing there yet either
    with pytest.raises(LayoutError) as error:
        scan_layout("flowers102", raw_dir, {"archives": ARCHIVES})
    message = str(error.value)
    assert str(raw_dir) in message and LAYOUTS["flowers102"].tree in message
    assert "--params ingestion.download=true" in message
    assert "conf/flowers102/parameters.yml" in message


def test_a_missing_dataset_whose_archives_lack_a_checksum_says_what_to_add(tmp_path):
    archives = [{"url": "http://example.org/food-101.tar.gz", "sha256": None}]
    with pytest.raises(LayoutError) as error:
        scan_layout("food101", tmp_path / "food101", {"archives": archives})
    message = str(error.value)
    assert "ingestion.download=true" in message and "published sha256" in message


def test_a_missing_dataset_without_a_download_does_not_offer_one(tmp_path):
    with pytest.raises(LayoutError) as error:
        scan_layout("caltech101", tmp_path / "caltech101", {})
    assert "ingestion.download" not in str(error.value)


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="caltech101"):
        scan_layout("mnist", tmp_path, {})


def test_caltech101_folders_leave_out_background_and_report_odd_files(tmp_path):
    root = tmp_path / "101_ObjectCategories"
    for name in ("image_0001.jpg", "image_0002.jpg"):
        image(root / "ant" / name)
        image(root / "Faces" / name)
        image(root / "BACKGROUND_Google" / name)
    text(root / "ant" / "notes.txt", "not an image")
    image(root / "ant" / "extra" / "image_0003.jpg")
    text(root / "README", "stray")

    scan = scan_layout("caltech101", tmp_path, {})

    assert scan.class_names == ["Faces", "ant"]  # folder-name (code point) order
    assert paths_by_class(scan) == {
        "ant": [
            "101_ObjectCategories/ant/image_0001.jpg",
            "101_ObjectCategories/ant/image_0002.jpg",
        ],
        "Faces": [
            "101_ObjectCategories/Faces/image_0001.jpg",
            "101_ObjectCategories/Faces/image_0002.jpg",
        ],
    }
    reasons = dict(scan.unusable)
    assert reasons["101_ObjectCategories/ant/notes.txt"] == "not an image file (suffix .txt)"
    assert "nested folder" in reasons["101_ObjectCategories/ant/extra/image_0003.jpg"]
    assert reasons["101_ObjectCategories/README"] == "file outside any class folder"
    assert not scan.missing


def test_caltech256_strips_numbers_and_leaves_out_clutter(tmp_path):
    root = tmp_path / "256_ObjectCategories"
    image(root / "001.ak47" / "001_0001.jpg")
    image(root / "002.american-flag" / "002_0001.jpg")
    image(root / "257.clutter" / "257_0001.jpg")
    scan = scan_layout("caltech256", tmp_path, {})
    assert scan.class_names == ["ak47", "american-flag"]
    assert [i.path for i in scan.images] == [
        "256_ObjectCategories/001.ak47/001_0001.jpg",
        "256_ObjectCategories/002.american-flag/002_0001.jpg",
    ]


def test_stanforddogs_names_classes_by_breed(tmp_path):
    image(tmp_path / "Images" / "n02085620-Chihuahua" / "n02085620_7.jpg")
    image(tmp_path / "Images" / "n02085782-Japanese_spaniel" / "n02085782_2.jpg")
    scan = scan_layout("stanforddogs", tmp_path, {})
    assert scan.class_names == ["Chihuahua", "Japanese_spaniel"]


def test_textures_and_digits_are_folder_layouts(tmp_path):
    image(tmp_path / "dtd" / "images" / "banded" / "banded_0001.jpg")
    image(tmp_path / "dtd" / "images" / "zigzagged" / "zigzagged_0001.jpg")
    assert scan_layout("textures", tmp_path, {}).class_names == ["banded", "zigzagged"]

    image(tmp_path / "digits" / "0" / "0000.png")
    image(tmp_path / "digits" / "1" / "0001.png")
    scan = scan_layout("digits", tmp_path / "digits", {})
    assert paths_by_class(scan) == {"0": ["0/0000.png"], "1": ["1/0001.png"]}


def test_mit67_uses_the_official_split_lists_when_present(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        image(tmp_path / "Images" / "kitchen" / name)
        image(tmp_path / "Images" / "bar" / name)
    without_lists = scan_layout("mit67", tmp_path, {})
    assert len(without_lists.images) == 6

    text(tmp_path / "TrainImages.txt", "kitchen/a.jpg\nbar/a.jpg\n")
    text(tmp_path / "TestImages.txt", "kitchen/b.jpg\nbar/gone.jpg\n")
    scan = scan_layout("mit67", tmp_path, {})
    assert paths_by_class(scan) == {
        "bar": ["Images/bar/a.jpg"],
        "kitchen": ["Images/kitchen/a.jpg", "Images/kitchen/b.jpg"],
    }
    assert scan.missing == ["Images/bar/gone.jpg"]


def test_cub200_reads_the_id_files(tmp_path):
    cub200_tree(tmp_path, stray=True)
    scan = scan_layout("cub200", tmp_path, {})
    assert scan.class_names == ["Black_footed_Albatross", "Laysan_Albatross"]
    assert paths_by_class(scan) == {
        "Black_footed_Albatross": ["CUB_200_2011/images/001.Black_footed_Albatross/a_1.jpg"],
        "Laysan_Albatross": ["CUB_200_2011/images/002.Laysan_Albatross/b_1.jpg"],
    }
    assert scan.missing == ["CUB_200_2011/images/002.Laysan_Albatross/b_2.jpg"]
    assert scan.unusable == [
        ("CUB_200_2011/images/002.Laysan_Albatross/stray.jpg", "not listed in images.txt")
    ]


def test_cub200_malformed_line_names_file_and_line(tmp_path):
    cub = cub200_tree(tmp_path, stray=True)
    text(cub / "image_class_labels.txt", "1 1\n2\n")
    with pytest.raises(LayoutError, match=r"line 2 has 1 fields.*image_class_labels.txt"):
        scan_layout("cub200", tmp_path, {})


def test_wood_reads_the_label_list(tmp_path):
    text(
        tmp_path / "labels.txt",
        "# file class\nknot0001.ppm sound\nknots/knot0002.ppm Decayed\nknot0003.ppm dry\n",
    )
    image(tmp_path / "knot0001.ppm")
    image(tmp_path / "knots" / "knot0002.ppm")
    image(tmp_path / "knot0099.ppm")
    scan = scan_layout("wood", tmp_path, {})
    assert scan.class_names == list(WOOD_CLASSES)
    assert paths_by_class(scan) == {"sound": ["knot0001.ppm"], "decayed": ["knots/knot0002.ppm"]}
    assert scan.missing == ["knot0003.ppm"]
    assert scan.unusable == [("knot0099.ppm", "not in labels.txt")]

    text(tmp_path / "labels.txt", "knot0001.ppm pine\n")
    with pytest.raises(LayoutError, match="unknown class 'pine'"):
        scan_layout("wood", tmp_path, {})


def test_flowers102_labels_from_the_mat_file(tmp_path):
    scipy.io.savemat(tmp_path / "imagelabels.mat", {"labels": np.array([[3, 1, 3, 2]])})
    image(tmp_path / "jpg" / "image_00001.jpg")
    image(tmp_path / "jpg" / "image_00003.jpg")
    image(tmp_path / "jpg" / "image_00009.jpg")
    scan = scan_layout("flowers102", tmp_path, {})
    assert scan.class_names == ["class_001", "class_002", "class_003"]
    assert paths_by_class(scan) == {"class_003": ["jpg/image_00001.jpg", "jpg/image_00003.jpg"]}
    assert scan.missing == ["jpg/image_00002.jpg", "jpg/image_00004.jpg"]
    assert scan.unusable == [("jpg/image_00009.jpg", "not labelled in imagelabels.mat")]


def test_catsdogs_reads_list_txt(tmp_path):
    text(
        tmp_path / "annotations" / "list.txt",
        "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"
        "Abyssinian_1 1 1 1\nAbyssinian_2 1 1 1\namerican_bulldog_10 2 2 1\n",
    )
    image(tmp_path / "images" / "Abyssinian_1.jpg")
    image(tmp_path / "images" / "american_bulldog_10.jpg")
    image(tmp_path / "images" / "Egyptian_Mau_7.jpg")
    text(tmp_path / "images" / "Abyssinian_100.mat", "matlab")
    scan = scan_layout("catsdogs", tmp_path, {})
    assert scan.class_names == ["Abyssinian", "american_bulldog"]
    assert paths_by_class(scan) == {
        "Abyssinian": ["images/Abyssinian_1.jpg"],
        "american_bulldog": ["images/american_bulldog_10.jpg"],
    }
    assert scan.missing == ["images/Abyssinian_2.jpg"]
    assert sorted(scan.unusable) == [
        ("images/Abyssinian_100.mat", "not an image file (suffix .mat)"),
        ("images/Egyptian_Mau_7.jpg", "not listed in annotations/list.txt"),
    ]


def _food(root: Path) -> Path:
    for name in ("1.jpg", "2.jpg"):
        image(root / "food-101" / "images" / "apple_pie" / name)
        image(root / "food-101" / "images" / "waffles" / name)
    return root / "food-101"


def test_food101_indexes_the_test_split_only(tmp_path):
    food = _food(tmp_path)
    text(food / "meta" / "test.txt", "waffles/2\napple_pie/1\napple_pie/3\n")
    text(food / "meta" / "classes.txt", "waffles\napple_pie\n")
    scan = scan_layout("food101", tmp_path, {})
    assert scan.class_names == ["waffles", "apple_pie"]
    assert paths_by_class(scan) == {
        "waffles": ["food-101/images/waffles/2.jpg"],
        "apple_pie": ["food-101/images/apple_pie/1.jpg"],
    }
    assert scan.missing == ["food-101/images/apple_pie/3.jpg"]


def test_food101_without_meta_fails_unless_allowed(tmp_path):
    _food(tmp_path)
    with pytest.raises(LayoutError, match="all_images_without_meta") as error:
        scan_layout("food101", tmp_path, {})
    assert str(tmp_path / "food-101" / "meta" / "test.txt") in str(error.value)
    scan = scan_layout("food101", tmp_path, {"all_images_without_meta": True})
    assert len(scan.images) == 4 and scan.class_names == ["apple_pie", "waffles"]


IMAGENET_WNIDS = ["n01440764", "n02012849", "n03126707"]
IMAGENET_WORDS = ["tench, Tinca tinca", "crane", "crane"]


def _imagenet_images(root: Path, folder: str) -> None:
    for number in (1, 2, 3, 4):
        image(root / folder / f"ILSVRC2012_val_{number:08d}.JPEG", fmt="JPEG")
    text(root / folder / "ILSVRC2012_val_00000099.JPEG", "no label")


def _imagenet_devkit(root: Path) -> None:
    # ILSVRC2012_IDs deliberately not in wnid order: labels must follow sorted wnids.
    ids = [3, 1, 2]
    synsets = np.zeros(
        4, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
    )
    for i, (wnid, words, class_id) in enumerate(zip(IMAGENET_WNIDS, IMAGENET_WORDS, ids)):
        synsets[i] = (class_id, wnid, words, 0)
    synsets[3] = (1001, "n00001740", "entity", 3)  # an inner node of the hierarchy
    data = root / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    scipy.io.savemat(data / "meta.mat", {"synsets": synsets})
    # Images 1..4 are tench, crane (bird), crane (machine), tench.
    text(data / "ILSVRC2012_validation_ground_truth.txt", "3\n1\n2\n3\n")


def _imagenet_loc(root: Path) -> None:
    text(
        root / "LOC_val_solution.csv",
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000002,n02012849 1 2 3 4 n02012849 5 6 7 8\n"
        "ILSVRC2012_val_00000001,n01440764 1 2 3 4\n"
        "ILSVRC2012_val_00000004,n01440764 1 2 3 4\n"
        "ILSVRC2012_val_00000003,n03126707 1 2 3 4\n",
    )
    text(
        root / "LOC_synset_mapping.txt",
        "".join(f"{w} {words}\n" for w, words in zip(IMAGENET_WNIDS, IMAGENET_WORDS)),
    )


def test_imagenet_devkit_and_solution_csv_agree(tmp_path):
    devkit, loc = tmp_path / "devkit", tmp_path / "loc"
    _imagenet_images(devkit, "ILSVRC2012_img_val")
    _imagenet_devkit(devkit)
    _imagenet_images(loc, "ILSVRC/Data/CLS-LOC/val")
    _imagenet_loc(loc)

    scans = [scan_layout("imagenet", devkit, {}), scan_layout("imagenet", loc, {})]

    expected_names = ["tench", "crane (n02012849)", "crane (n03126707)"]
    for scan in scans:
        assert scan.class_names == expected_names
        assert not scan.missing
        assert [reason for _, reason in scan.unusable] == ["no ground-truth label for this file"]
    labels = [{Path(i.path).stem: i.class_name for i in scan.images} for scan in scans]
    assert (
        labels[0]
        == labels[1]
        == {
            "ILSVRC2012_val_00000001": "tench",
            "ILSVRC2012_val_00000002": "crane (n02012849)",
            "ILSVRC2012_val_00000003": "crane (n03126707)",
            "ILSVRC2012_val_00000004": "tench",
        }
    )


def test_imagenet_solution_csv_without_mapping_names_classes_by_wnid(tmp_path):
    _imagenet_images(tmp_path, "ILSVRC2012_img_val")
    _imagenet_loc(tmp_path)
    (tmp_path / "LOC_synset_mapping.txt").unlink()
    assert scan_layout("imagenet", tmp_path, {}).class_names == IMAGENET_WNIDS


def test_imagenet_without_ground_truth_is_a_layout_error(tmp_path):
    _imagenet_images(tmp_path, "ILSVRC2012_img_val")
    with pytest.raises(LayoutError, match="no ground truth found"):
        scan_layout("imagenet", tmp_path, {})


def test_flowers102_unreadable_label_file_is_named(tmp_path):
    (tmp_path / "jpg").mkdir()
    (tmp_path / "imagelabels.mat").write_bytes(b"not a mat file")
    with pytest.raises(LayoutError, match="not a readable .mat file") as error:
        scan_layout("flowers102", tmp_path, {})
    assert str(tmp_path / "imagelabels.mat") in str(error.value)

    scipy.io.savemat(tmp_path / "imagelabels.mat", {"lbl": np.array([[1]])})
    with pytest.raises(LayoutError, match="no variable 'labels'"):
        scan_layout("flowers102", tmp_path, {})


def test_imagenet_solution_row_without_wnid_names_the_line(tmp_path):
    _imagenet_images(tmp_path, "ILSVRC2012_img_val")
    text(tmp_path / "LOC_val_solution.csv", "ImageId,PredictionString\nILSVRC2012_val_00000001,\n")
    with pytest.raises(LayoutError, match="line 2 has no wnid"):
        scan_layout("imagenet", tmp_path, {})
