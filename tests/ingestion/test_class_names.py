"""The optional class-names file (dataset_source.class_names_file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from cnn_feature_behavior.ingestion.class_names import ClassNamesError
from cnn_feature_behavior.ingestion.layouts import scan_layout
from cnn_feature_behavior.pipelines.ingestion.nodes import build_image_index

INGESTION = {
    "verify_images": False,
    "allow_missing": True,
    "download": False,
    "download_timeout_s": 60,
    "decode_workers": 1,
    "image_limits": {},
}


@pytest.fixture
def flowers(tmp_path) -> Path:
    """Three flowers102 classes (labels 1..3), two images each."""
    scipy.io.savemat(tmp_path / "imagelabels.mat", {"labels": np.array([[1, 1, 2, 2, 3, 3]])})
    (tmp_path / "jpg").mkdir()
    for number in range(1, 7):
        Image.new("RGB", (6, 5), (number * 30, 0, 0)).save(
            tmp_path / "jpg" / f"image_{number:05d}.jpg"
        )
    return tmp_path


def test_one_name_per_line_in_label_order_reaches_the_index(flowers):
    (flowers / "names.txt").write_text(
        "pink primrose\n  hard-leaved pocket orchid \ncanterbury bells\n\n"
    )
    index, _ = build_image_index(
        str(flowers), "flowers102", INGESTION, {"class_names_file": "names.txt"}, None
    )
    assert index.groupby("label")["class_name"].first().tolist() == [
        "pink primrose",
        "hard-leaved pocket orchid",
        "canterbury bells",
    ]
    assert index["path"].tolist()[:2] == ["jpg/image_00001.jpg", "jpg/image_00002.jpg"]


def test_json_mapping_by_default_name_absolute_path_partial(flowers, tmp_path_factory):
    names = tmp_path_factory.mktemp("conf") / "flowers.json"
    names.write_text(json.dumps({"class_003": "canterbury bells", "class_001": "pink primrose"}))
    scan = scan_layout("flowers102", flowers, {"class_names_file": str(names)})
    assert scan.class_names == ["pink primrose", "class_002", "canterbury bells"]
    assert [i.class_name for i in scan.images] == [
        "pink primrose",
        "pink primrose",
        "class_002",
        "class_002",
        "canterbury bells",
        "canterbury bells",
    ]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (
            "names.txt",
            "a\nb\n",
            r"2 lines, expected one name per class: 3 \(class_001 .. class_003",
        ),
        ("names.txt", "a\nb\nc\nd\n", "4 lines, expected one name per class: 3"),
        ("names.txt", "a\n\nc\n", "line 2 is empty"),
        ("names.txt", "a\nb\na\n", "names given to more than one class: a"),
        ("names.json", '{"class_001": "a", "1": "b"}', "unknown classes '1'"),
        ("names.json", '{"class_001": "class_002"}', "more than one class: class_002"),
        ("names.json", '["a", "b", "c"]', "expected a JSON object"),
        ("names.json", '{"class_001": 7}', "the name of class_001 is not a non-empty string"),
        ("names.json", "{oops", "not valid JSON"),
    ],
)
def test_bad_names_files_are_named(flowers, name, content, problem):
    (flowers / name).write_text(content)
    with pytest.raises(ClassNamesError, match=problem) as error:
        scan_layout("flowers102", flowers, {"class_names_file": name})
    assert str(flowers / name) in str(error.value)


def test_missing_names_file_and_bad_parameter(flowers):
    with pytest.raises(ClassNamesError, match="file not found") as error:
        scan_layout("flowers102", flowers, {"class_names_file": "absent.txt"})
    assert str(flowers / "absent.txt") in str(error.value)
    with pytest.raises(ValueError, match="dataset_source.class_names_file must be a path"):
        scan_layout("flowers102", flowers, {"class_names_file": 3})
