"""Tiny raw dataset trees in the official layouts, for the reader and ingestion tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def image(path: Path, colour: int = 128, fmt: str | None = None) -> Path:
    """A tiny real 6 x 5 RGB image file (format from the suffix unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 5), (colour, 255 - colour, 30)).save(path, format=fmt)
    return path


def text(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def cub200_tree(root: Path, *, stray: bool = False) -> Path:
    """CUB_200_2011 with two classes and three listed images, of which b_2.jpg is not on disk;
    `stray`: also an image on disk that images.txt does not list. Returns the CUB_200_2011 folder."""
    cub = root / "CUB_200_2011"
    text(cub / "classes.txt", "1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n")
    text(
        cub / "images.txt",
        "1 001.Black_footed_Albatross/a_1.jpg\n2 002.Laysan_Albatross/b_1.jpg\n"
        "3 002.Laysan_Albatross/b_2.jpg\n",
    )
    text(cub / "image_class_labels.txt", "1 1\n2 2\n3 2\n")
    image(cub / "images" / "001.Black_footed_Albatross" / "a_1.jpg")
    image(cub / "images" / "002.Laysan_Albatross" / "b_1.jpg")
    if stray:
        image(cub / "images" / "002.Laysan_Albatross" / "stray.jpg")
    return cub
