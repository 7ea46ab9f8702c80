"""Image index, rejects and dataset properties: bad files, missing files, subsampling."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cnn_feature_behavior.ingestion.image_checks import decode_problem, find_decode_problems
from cnn_feature_behavior.ingestion.index import (
    INDEX_COLUMNS,
    PROPERTY_COLUMNS,
    REJECT_COLUMNS,
    MissingImagesError,
    build_index,
    dataset_properties,
    properties_markdown,
    select_per_class,
)
from cnn_feature_behavior.ingestion.layouts import scan_layout
from cnn_feature_behavior.ingestion.readers.base import LabelledImage, LayoutScan


def jpeg_bytes(size=(64, 48), seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    good = jpeg_bytes()
    png = io.BytesIO()
    Image.new("L", (8, 8), 200).save(png, format="PNG")
    return {
        "good": write(tmp_path / "good.jpg", good),
        "png": write(tmp_path / "good.png", png.getvalue()),
        "empty": write(tmp_path / "empty.jpg", b""),
        "truncated": write(tmp_path / "truncated.jpg", good[: len(good) * 2 // 3]),
        "text": write(tmp_path / "text.jpg", b"this is not an image at all\n" * 10),
    }


def test_decode_problem_catches_each_bad_case(bad_files):
    assert decode_problem(bad_files["good"]) is None
    assert decode_problem(bad_files["png"]) is None
    assert decode_problem(bad_files["empty"]) == "empty file (0 bytes)"
    assert "truncated" in decode_problem(bad_files["truncated"])
    assert "cannot identify image file" in decode_problem(bad_files["text"])


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 20, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decode_problem_rejects_an_extreme_aspect_ratio_or_size(tmp_path):
    from cnn_feature_behavior.ingestion.image_checks import ImageLimits

    # A 1 x 100,000 PNG is a 200-byte file that would be resized to 25,600,000 x 256 pixels.
    thin = write(tmp_path / "thin.png", png_bytes(100_000, 1))
    assert "aspect ratio 100000:1" in decode_problem(thin)
    square = write(tmp_path / "square.png", png_bytes(300, 300))
    assert decode_problem(square) is None
    assert "pixels once resized" in decode_problem(
        square, resize=600, limits=ImageLimits(max_resized_pixels=300_000)
    )
    assert "90,000 pixels" in decode_problem(square, limits=ImageLimits(max_decoded_pixels=1_000))


def test_build_index_rejects_the_thin_image_with_its_reason(messy_tree):
    from cnn_feature_behavior.ingestion.image_checks import ImageLimits, SizeCheck

    raw_dir, _ = messy_tree
    write(raw_dir / "a" / "thin.png", png_bytes(100_000, 1))
    write(raw_dir / "a" / "wide.png", png_bytes(300, 60))
    scan = scan_layout("digits", raw_dir, {})
    index, rejects = build_index(
        scan,
        raw_dir,
        dataset="t",
        verify_images=True,
        allow_missing=False,
        max_images_per_class=None,
        size_check=SizeCheck(resize=256, limits=ImageLimits(max_aspect_ratio=4)),
    )
    reasons = dict(zip(rejects["path"], rejects["reason"]))
    assert "aspect ratio 100000:1" in reasons["a/thin.png"]
    assert "aspect ratio 5:1 (300 x 60) is above the limit 4" in reasons["a/wide.png"]
    assert "a/thin.png" not in set(index["path"]) and "a/wide.png" not in set(index["path"])


def test_find_decode_problems_in_parallel_matches_one_by_one(bad_files, tmp_path):
    names = [p.name for p in bad_files.values()] * 5
    expected = {n: decode_problem(tmp_path / n) for n in names if decode_problem(tmp_path / n)}
    assert find_decode_problems(tmp_path, names, workers=4) == expected
    assert set(expected) == {"empty.jpg", "truncated.jpg", "text.jpg"}


def _reference_selection(candidates, limit, bad):
    """Brute force: filter every class fully, then cut."""
    chosen = {}
    for class_name, paths in candidates.items():
        usable = [p for p in paths if p not in bad]
        chosen[class_name] = usable if limit is None else usable[:limit]
    return chosen


@pytest.mark.parametrize("limit", [None, 1, 2, 5, 50])
@pytest.mark.parametrize("seed", range(4))
def test_select_per_class_matches_brute_force_and_checks_only_what_it_needs(limit, seed):
    rng = random.Random(seed)
    candidates = {
        f"c{c}": [f"c{c}/{i:03d}.jpg" for i in range(rng.randint(0, 12))] for c in range(6)
    }
    every_path = [p for paths in candidates.values() for p in paths]
    bad = {p for p in every_path if rng.random() < 0.3}
    checked: list[str] = []

    def find_problems(batch):
        checked.extend(batch)
        return {p: "bad" for p in batch if p in bad}

    selected, problems = select_per_class(candidates, limit, find_problems)

    assert selected == _reference_selection(candidates, limit, bad)
    assert len(checked) == len(set(checked))  # nothing checked twice
    assert set(problems) == bad & set(checked)
    for class_name, paths in candidates.items():
        # Each class is checked as a prefix, up to the point its selection was full.
        seen = [p for p in checked if p.startswith(f"{class_name}/")]
        assert sorted(seen) == paths[: len(seen)]
        if limit is not None and len(selected[class_name]) == limit:
            assert seen[-1] == selected[class_name][-1]


def test_select_per_class_without_checker_takes_the_first_n():
    candidates = {"a": ["1", "2", "3"], "b": ["4"]}
    assert select_per_class(candidates, 2, None) == ({"a": ["1", "2"], "b": ["4"]}, {})


def _folder_scan(layout: dict[str, list[str]]) -> LayoutScan:
    images = [LabelledImage(f"{c}/{n}", c) for c, names in layout.items() for n in names]
    return LayoutScan(list(layout), images)


@pytest.fixture
def messy_tree(tmp_path) -> tuple[Path, LayoutScan]:
    """Three classes of JPEGs with the bad cases in class `b`, one more class with 1 image."""
    good = jpeg_bytes()
    for c in ("a", "b", "c"):
        for i in range(4):
            write(tmp_path / c / f"{i}.jpg", jpeg_bytes(seed=i))
    write(tmp_path / "b" / "4_empty.jpg", b"")
    write(tmp_path / "b" / "5_truncated.jpg", good[:300])
    write(tmp_path / "b" / "6_text.jpg", b"plain text")
    write(tmp_path / "d" / "0.jpg", good)
    scan = scan_layout("digits", tmp_path, {})  # a plain folder-per-class layout
    return tmp_path, scan


def test_build_index_rejects_bad_files_with_reasons(messy_tree, caplog):
    raw_dir, scan = messy_tree
    caplog.set_level("WARNING")
    index, rejects = build_index(
        scan,
        raw_dir,
        dataset="t",
        verify_images=True,
        allow_missing=False,
        max_images_per_class=None,
    )
    assert list(index.columns) == INDEX_COLUMNS
    assert list(rejects.columns) == REJECT_COLUMNS
    reasons = dict(zip(rejects["path"], rejects["reason"]))
    assert reasons["b/4_empty.jpg"] == "empty file (0 bytes)"
    assert "truncated" in reasons["b/5_truncated.jpg"].lower()
    assert "does not decode" in reasons["b/6_text.jpg"]
    assert "class d has 1 usable image" in reasons["d/0.jpg"]
    assert set(rejects["stage"]) == {"ingestion"}
    assert len(rejects) == 4
    assert index["class_name"].value_counts().to_dict() == {"a": 4, "b": 4, "c": 4}
    assert index["label"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert "3 files do not decode" in caplog.text
    assert "fewer than 2 usable images" in caplog.text and "d (1)" in caplog.text


def test_build_index_without_verification_keeps_undecodable_files(messy_tree):
    raw_dir, scan = messy_tree
    index, rejects = build_index(
        scan,
        raw_dir,
        dataset="t",
        verify_images=False,
        allow_missing=False,
        max_images_per_class=None,
    )
    assert (index["class_name"] == "b").sum() == 7
    assert rejects["path"].tolist() == ["d/0.jpg"]


def test_build_index_order_ids_and_labels(messy_tree):
    raw_dir, scan = messy_tree
    scan.images.reverse()  # the index order must not depend on the reader's order
    index, _ = build_index(
        scan,
        raw_dir,
        dataset="t",
        verify_images=True,
        allow_missing=False,
        max_images_per_class=None,
    )
    assert index.equals(index.sort_values(["label", "path"], ignore_index=True))
    assert index["image_id"].is_unique
    assert (index["image_id"] + ".jpg").tolist() == index["path"].tolist()
    assert index["label"].dtype == np.int64
    again, _ = build_index(
        scan_layout("digits", raw_dir, {}),
        raw_dir,
        dataset="t",
        verify_images=True,
        allow_missing=False,
        max_images_per_class=None,
    )
    pd.testing.assert_frame_equal(index, again)


def test_subsample_takes_the_first_usable_images_of_each_class(messy_tree):
    raw_dir, scan = messy_tree
    write(raw_dir / "b" / "0.jpg", b"")  # the first image of b is now bad
    index, rejects = build_index(
        scan,
        raw_dir,
        dataset="t",
        verify_images=True,
        allow_missing=False,
        max_images_per_class=2,
    )
    assert index.groupby("class_name")["path"].apply(list).to_dict() == {
        "a": ["a/0.jpg", "a/1.jpg"],
        "b": ["b/1.jpg", "b/2.jpg"],
        "c": ["c/0.jpg", "c/1.jpg"],
    }
    # Only the images it had to look at are checked: b's later bad files are not reached.
    assert sorted(rejects["path"]) == ["b/0.jpg", "d/0.jpg"]


def test_missing_labelled_images_fail_unless_allowed(tmp_path):
    for c in ("a", "b"):
        for i in range(2):
            write(tmp_path / c / f"{i}.jpg", jpeg_bytes(seed=i))
    scan = _folder_scan({"a": ["0.jpg", "1.jpg"], "b": ["0.jpg", "1.jpg"]})
    scan.missing = ["a/2.jpg", "b/7.jpg", "b/8.jpg"]
    with pytest.raises(MissingImagesError) as error:
        build_index(
            scan,
            tmp_path,
            dataset="flowers102",
            verify_images=True,
            allow_missing=False,
            max_images_per_class=None,
        )
    assert "3 labelled images are missing" in str(error.value)
    assert str(tmp_path) in str(error.value)
    assert "allow_missing" in str(error.value)

    index, rejects = build_index(
        scan,
        tmp_path,
        dataset="flowers102",
        verify_images=True,
        allow_missing=True,
        max_images_per_class=None,
    )
    assert len(index) == 4
    assert rejects["path"].tolist() == scan.missing
    assert set(rejects["reason"]) == {"labelled but missing on disk"}


def test_fewer_than_two_usable_classes_is_an_error(tmp_path):
    write(tmp_path / "a" / "0.jpg", jpeg_bytes())
    write(tmp_path / "a" / "1.jpg", jpeg_bytes())
    write(tmp_path / "b" / "0.jpg", b"")
    with pytest.raises(ValueError, match="1 classes with at least 2 usable images"):
        build_index(
            scan_layout("digits", tmp_path, {}),
            tmp_path,
            dataset="t",
            verify_images=True,
            allow_missing=False,
            max_images_per_class=None,
        )


def test_dataset_properties_match_a_loop():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(7), rng.integers(2, 40, 7))
    index = pd.DataFrame({"label": labels, "path": [f"{i}.jpg" for i in range(len(labels))]})
    counts = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    row = dataset_properties(index, "wood").iloc[0]
    assert list(row.index) == PROPERTY_COLUMNS
    assert row["dataset"] == "wood"
    assert row["n_images"] == len(labels)
    assert row["n_classes"] == len(counts)
    assert row["min_images_per_class"] == min(counts.values())
    assert row["max_images_per_class"] == max(counts.values())
    assert row["mean_images_per_class"] == pytest.approx(sum(counts.values()) / len(counts))


def test_properties_markdown_follows_table_2():
    properties = pd.DataFrame(
        [
            ("cub200", 11788, 200, 41, 60, 58.94),
            ("mit67", 6700, 67, 100, 100, 100.0),
        ],
        columns=PROPERTY_COLUMNS,
    )
    lines = properties_markdown(properties).splitlines()
    assert lines[2] == "| cub200 | 11,788 | 200 | 41 - 60 | 59 |"
    assert lines[3] == "| mit67 | 6,700 | 67 | 100 | 100 |"


def test_max_images_per_class_must_be_positive(messy_tree):
    raw_dir, scan = messy_tree
    with pytest.raises(ValueError, match="at least 1, got 0"):
        build_index(
            scan,
            raw_dir,
            dataset="t",
            verify_images=True,
            allow_missing=False,
            max_images_per_class=0,
        )


def test_build_index_reports_classes_with_no_image_on_disk(tmp_path, caplog):
    for name in ("a/0.jpg", "a/1.jpg", "b/0.jpg", "b/1.jpg"):
        write(tmp_path / name, jpeg_bytes())
    scan = LayoutScan(
        ["a", "b", "empty"],
        [LabelledImage(p, p[0]) for p in ("a/0.jpg", "a/1.jpg", "b/0.jpg", "b/1.jpg")],
    )
    caplog.set_level("WARNING")
    index, _ = build_index(
        scan,
        tmp_path,
        dataset="t",
        verify_images=False,
        allow_missing=False,
        max_images_per_class=None,
    )
    assert sorted(set(index["class_name"])) == ["a", "b"]
    assert "1 classes have fewer than 2 usable images" in caplog.text
    assert "empty (0)" in caplog.text
