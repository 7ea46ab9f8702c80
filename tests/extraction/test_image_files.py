"""The image files a user names (similar's queries, predict's images): one place lists them."""

from __future__ import annotations

import pytest
from PIL import Image

from cnn_feature_behavior.extraction.image_files import HIDDEN_REASON, image_files


def image(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path, format="PNG")


def test_a_folder_lists_its_images_at_any_depth_and_the_other_files_with_the_reason(tmp_path):
    image(tmp_path / "b" / "deeper" / "2.PNG")
    image(tmp_path / "a.jpg")
    image(tmp_path / "b" / "1.webp")
    image(tmp_path / ".thumbs" / "3.png")
    (tmp_path / "b" / ".hidden.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("no image")
    (tmp_path / "gone.png").symlink_to(tmp_path / "absent.png")

    found = image_files(tmp_path, "predict.images")

    assert found.images == ("a.jpg", "b/1.webp", "b/deeper/2.PNG")
    assert found.paths == [tmp_path / "a.jpg", tmp_path / "b/1.webp", tmp_path / "b/deeper/2.PNG"]
    reasons = dict(found.others)
    assert reasons[".thumbs/3.png"] == reasons["b/.hidden.png"] == HIDDEN_REASON
    assert reasons["notes.txt"] == "not an image file (suffix .txt)"
    assert reasons["gone.png"].startswith("broken symbolic link")
    assert len(reasons) == 4


def test_one_image_file_is_itself(tmp_path):
    image(tmp_path / "photo.JPEG")
    found = image_files(tmp_path / "photo.JPEG", "similar.images")
    assert found.paths == [tmp_path / "photo.JPEG"] and found.others == ()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, r"similar.images: .*absent is neither an image file nor a folder"),
        (
            lambda p: p.write_text("x"),
            r"similar.images: .*absent is not an image file \(suffix \(none\)\)",
        ),
        (
            lambda p: (p.mkdir(), (p / "readme.md").write_text("x")),
            r"similar.images: no image file under .*absent \(suffixes .*\.jpg.*\); "
            r"found readme.md: not an image file \(suffix .md\)",
        ),
        (lambda p: p.mkdir(), r"no image file under .*; found nothing"),
    ],
)
def test_a_path_without_an_image_is_an_error_naming_the_parameter(tmp_path, make, message):
    make(tmp_path / "absent")
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        image_files(tmp_path / "absent", "similar.images")
