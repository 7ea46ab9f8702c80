"""The official split readers on tiny trees with split files in each dataset's official format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from builders.raw_files import cub200_tree, image, text

from cnn_feature_behavior.ingestion.index import build_index
from cnn_feature_behavior.ingestion.layouts import scan_layout
from cnn_feature_behavior.ingestion.readers.base import LayoutError


def splits(scan) -> dict[str, str | None]:
    return {item.path: item.split for item in scan.images}


# flowers102: setid.mat holds trnid, valid, tstid (1 x n uint16 image numbers).


def _flowers(root: Path, **setid) -> Path:
    scipy.io.savemat(root / "imagelabels.mat", {"labels": np.array([[1, 1, 2, 2, 2]])})
    for number in range(1, 6):
        image(root / "jpg" / f"image_{number:05d}.jpg")
    if setid:
        scipy.io.savemat(
            root / "setid.mat", {k: np.array([v], dtype=np.uint16) for k, v in setid.items()}
        )
    return root


def test_flowers102_setid_validation_counts_as_train(tmp_path):
    _flowers(tmp_path, trnid=[1, 3], valid=[4], tstid=[2, 5])
    assert splits(scan_layout("flowers102", tmp_path, {})) == {
        "jpg/image_00001.jpg": "train",
        "jpg/image_00002.jpg": "test",
        "jpg/image_00003.jpg": "train",
        "jpg/image_00004.jpg": "train",
        "jpg/image_00005.jpg": "test",
    }


def test_flowers102_without_setid_has_no_split(tmp_path):
    _flowers(tmp_path)
    assert set(splits(scan_layout("flowers102", tmp_path, {})).values()) == {None}


@pytest.mark.parametrize(
    ("setid", "problem"),
    [
        ({"trnid": [1, 3], "valid": [4], "tstid": [2, 5, 3]}, "listed in both the train split"),
        ({"trnid": [1, 3], "valid": [4], "tstid": [2]}, "1 of the 5 labelled images on disk"),
        ({"trnid": [1, 3], "valid": [4], "tstid": [2, 9]}, "not image numbers 1..5"),
        ({"trnid": [1, 3], "tstid": [2, 4, 5]}, "no variable 'valid'"),
    ],
)
def test_flowers102_bad_setid_is_named(tmp_path, setid, problem):
    _flowers(tmp_path, **setid)
    with pytest.raises(LayoutError, match=problem) as error:
        scan_layout("flowers102", tmp_path, {})
    assert str(tmp_path / "setid.mat") in str(error.value)


def test_real_flowers102_mini_setid_splits_the_120_images(shared_datasets):
    raw_dir = shared_datasets / "flowers102-mini"
    setid = scipy.io.loadmat(raw_dir / "setid.mat")
    expected = {int(n): "train" for key in ("trnid", "valid") for n in setid[key].ravel()}
    expected.update({int(n): "test" for n in setid["tstid"].ravel()})
    index, _ = build_index(
        scan_layout("flowers102", raw_dir, {}),
        raw_dir,
        dataset="flowers102",
        verify_images=False,
        allow_missing=True,
        max_images_per_class=None,
    )
    assert len(index) == 120 and index["split"].notna().all()
    numbers = index["path"].str.extract(r"image_(\d+)")[0].astype(int)
    assert index["split"].tolist() == [expected[n] for n in numbers]
    assert set(index.groupby("class_name")["split"].nunique()) == {2}  # both sides per class


# mit67: TrainImages.txt / TestImages.txt, "<class>/<image>" lines.


def _mit67(root: Path) -> Path:
    for name in ("a.jpg", "b.jpg"):
        image(root / "Images" / "kitchen" / name)
        image(root / "Images" / "bar" / name)
    return root


def test_mit67_split_lists(tmp_path):
    _mit67(tmp_path)
    text(tmp_path / "TrainImages.txt", "kitchen/a.jpg\r\nbar/a.jpg\r\n")
    text(tmp_path / "TestImages.txt", "kitchen/b.jpg\nbar/b.jpg\n\n")
    assert splits(scan_layout("mit67", tmp_path, {})) == {
        "Images/bar/a.jpg": "train",
        "Images/bar/b.jpg": "test",
        "Images/kitchen/a.jpg": "train",
        "Images/kitchen/b.jpg": "test",
    }


@pytest.mark.parametrize(
    ("train", "test", "named", "problem"),
    [
        ("kitchen/a.jpg\n", None, "TestImages.txt", "split file missing"),
        ("kitchen/a.jpg\n", "kitchen/a.jpg\n", "TestImages.txt", "listed in both"),
        ("kitchen/a.jpg\nkitchen a\n", "bar/a.jpg\n", "TrainImages.txt", "line 2: 'kitchen a'"),
    ],
)
def test_mit67_bad_split_lists_are_named(tmp_path, train, test, named, problem):
    _mit67(tmp_path)
    text(tmp_path / "TrainImages.txt", train)
    if test is not None:
        text(tmp_path / "TestImages.txt", test)
    with pytest.raises(LayoutError, match=problem) as error:
        scan_layout("mit67", tmp_path, {})
    assert str(tmp_path / named) in str(error.value)


# textures: dtd/labels/{train,val,test}<k>.txt, "<class>/<image>" lines relative to dtd/images/.


def _dtd(
    root: Path, k: int = 1, test: str = "banded/banded_0003.jpg\nzigzagged/zigzagged_0003.jpg\n"
):
    for c in ("banded", "zigzagged"):
        for n in (1, 2, 3):
            image(root / "dtd" / "images" / c / f"{c}_{n:04d}.jpg")
    labels = root / "dtd" / "labels"
    text(labels / f"train{k}.txt", "banded/banded_0001.jpg\nzigzagged/zigzagged_0001.jpg\n")
    text(labels / f"val{k}.txt", "banded/banded_0002.jpg\nzigzagged/zigzagged_0002.jpg\n")
    text(labels / f"test{k}.txt", test)
    return labels


def test_textures_split_k_train_and_val_are_train(tmp_path):
    _dtd(tmp_path, k=1)
    _dtd(tmp_path, k=2, test="banded/banded_0001.jpg\nzigzagged/zigzagged_0003.jpg\n")
    # In split 2 banded_0001 is both train and test: only split 2 is read when asked for.
    scan = scan_layout("textures", tmp_path, {})
    assert splits(scan)["dtd/images/banded/banded_0003.jpg"] == "test"
    assert sum(s == "train" for s in splits(scan).values()) == 4
    with pytest.raises(LayoutError, match="listed in both") as error:
        scan_layout("textures", tmp_path, {"split_number": 2})
    assert "test2.txt" in str(error.value)


def test_textures_without_labels_has_no_split_and_bad_numbers_fail(tmp_path):
    labels = _dtd(tmp_path)
    with pytest.raises(ValueError, match=r"split_number must be one of DTD's splits 1..10, got 11"):
        scan_layout("textures", tmp_path, {"split_number": 11})
    (labels / "val1.txt").unlink()
    with pytest.raises(LayoutError, match="split file missing") as error:
        scan_layout("textures", tmp_path, {})
    assert str(labels / "val1.txt") in str(error.value)
    for f in labels.iterdir():
        f.unlink()
    assert set(splits(scan_layout("textures", tmp_path, {})).values()) == {None}


def test_textures_image_in_no_list_is_an_error(tmp_path):
    _dtd(tmp_path, test="banded/banded_0003.jpg\n")
    with pytest.raises(LayoutError, match="1 of the 6 labelled images on disk are in no split"):
        scan_layout("textures", tmp_path, {})


# cub200: CUB_200_2011/train_test_split.txt, "<image_id> <is_training_image>".


def test_cub200_train_test_split(tmp_path):
    cub = cub200_tree(tmp_path)
    text(cub / "train_test_split.txt", "1 1\n2 0\n3 1\n")
    assert splits(scan_layout("cub200", tmp_path, {})) == {
        "CUB_200_2011/images/001.Black_footed_Albatross/a_1.jpg": "train",
        "CUB_200_2011/images/002.Laysan_Albatross/b_1.jpg": "test",
    }
    for content, problem in [
        ("1 1\n2 2\n3 1\n", "is_training_image '2'"),
        ("1 1\n2 0\n7 1\n", "image id 7 is not in images.txt"),
        ("1 1\n2\n", "line 2 has 1 fields"),
        ("1 1\n3 0\n", "1 of the 2 labelled images on disk are in no split"),
    ]:
        text(cub / "train_test_split.txt", content)
        with pytest.raises(LayoutError, match=problem) as error:
            scan_layout("cub200", tmp_path, {})
        assert "train_test_split.txt" in str(error.value)


# catsdogs: annotations/trainval.txt and test.txt, lines as in list.txt.


def test_catsdogs_trainval_and_test(tmp_path):
    annotations = tmp_path / "annotations"
    text(annotations / "list.txt", "Abyssinian_1 1 1 1\nAbyssinian_2 1 1 1\nbeagle_3 2 2 1\n")
    for name in ("Abyssinian_1", "Abyssinian_2", "beagle_3"):
        image(tmp_path / "images" / f"{name}.jpg")
    text(annotations / "trainval.txt", "Abyssinian_1 1 1 1\nbeagle_3 2 2 1\n")
    text(annotations / "test.txt", "Abyssinian_2 1 1 1\n")
    assert splits(scan_layout("catsdogs", tmp_path, {})) == {
        "images/Abyssinian_1.jpg": "train",
        "images/Abyssinian_2.jpg": "test",
        "images/beagle_3.jpg": "train",
    }
    text(annotations / "test.txt", "Abyssinian_2 1 1\n")
    with pytest.raises(LayoutError, match="line 1 has 3 fields, expected 4") as error:
        scan_layout("catsdogs", tmp_path, {})
    assert str(annotations / "test.txt") in str(error.value)
    (annotations / "test.txt").unlink()
    with pytest.raises(LayoutError, match="split file missing"):
        scan_layout("catsdogs", tmp_path, {})


# stanforddogs: train_list.mat / test_list.mat, as lists.tar ships them: file_list and
# annotation_list are N x 1 cell arrays of strings, labels an N x 1 double array.


def _cell(strings: list[str]) -> np.ndarray:
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = np.array([s])
    return cell


def _dogs_list(path: Path, files: list[str], labels: list[int], **override) -> None:
    content = {
        "file_list": _cell(files),
        "annotation_list": _cell([f.rsplit(".", 1)[0] for f in files]),
        "labels": np.array(labels, dtype=float).reshape(-1, 1),
    }
    scipy.io.savemat(path, content | override)


def test_stanforddogs_train_and_test_lists(tmp_path):
    files = [
        "n02085620-Chihuahua/n02085620_7.jpg",
        "n02085620-Chihuahua/n02085620_8.jpg",
        "n02085782-Japanese_spaniel/n02085782_2.jpg",
    ]
    for f in files:
        image(tmp_path / "Images" / f)
    _dogs_list(tmp_path / "train_list.mat", files[:1] + files[2:], [1, 2])
    _dogs_list(tmp_path / "test_list.mat", files[1:2], [1])
    assert splits(scan_layout("stanforddogs", tmp_path, {})) == {
        "Images/n02085620-Chihuahua/n02085620_7.jpg": "train",
        "Images/n02085620-Chihuahua/n02085620_8.jpg": "test",
        "Images/n02085782-Japanese_spaniel/n02085782_2.jpg": "train",
    }
    for override, problem in [
        ({"file_list": np.array([[1.0], [2.0]])}, "entry 1 of 'file_list' is not a string"),
        ({"file_list": _cell(["n02085620_8.jpg"])}, "entry 1: 'n02085620_8.jpg' is not a"),
    ]:
        _dogs_list(tmp_path / "test_list.mat", files[1:2], [1], **override)
        with pytest.raises(LayoutError, match=problem) as error:
            scan_layout("stanforddogs", tmp_path, {})
        assert str(tmp_path / "test_list.mat") in str(error.value)
    scipy.io.savemat(tmp_path / "test_list.mat", {"labels": np.array([[1.0]])})
    with pytest.raises(LayoutError, match="no variable 'file_list'"):
        scan_layout("stanforddogs", tmp_path, {})


def test_datasets_without_an_official_split_index_null(tmp_path):
    for name in ("image_0001.jpg", "image_0002.jpg"):
        image(tmp_path / "101_ObjectCategories" / "ant" / name)
        image(tmp_path / "101_ObjectCategories" / "bee" / name)
    scan = scan_layout("caltech101", tmp_path, {})
    index, _ = build_index(
        scan,
        tmp_path,
        dataset="caltech101",
        verify_images=False,
        allow_missing=False,
        max_images_per_class=None,
    )
    assert index.columns[-1] == "split" and index["split"].isna().all()
    assert index["split"].dtype == object
