"""Every image mode embeds the same picture: crops of each saved mode against the 8-bit original.

One 8-bit RGB picture (gradients, a disc, a white rectangle) is saved in each mode; the crops that
`image_crops` cuts from each file must match those of the original (greyscale modes against the
original's PIL greyscale): exactly where the format is lossless, within a mean absolute
difference of 2 levels where it is not (JPEG). Transparent pixels are put
where the original is white, so compositing on white is checked against the original too.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnn_feature_behavior.extraction.crops import image_crops, load_rgb
from cnn_feature_behavior.ingestion.image_checks import (
    ImageValuesError,
    decode_problem,
    find_decode_problems,
)

RESIZE, CROP = 40, 32  # 64x48 -> 53x40: the bilinear resize runs too
_RECT = (slice(6, 18), slice(40, 58))  # white in the original, transparent in the alpha files
_MEAN_ABS_TOLERANCE = 2.0  # levels, for the lossy formats


def _picture() -> np.ndarray:
    """64x48 RGB: gradients and a disc, every channel in 20..235, a white rectangle.

    Reduced to 256 colours, so that a palette file of it is lossless.
    """
    rows, cols = np.mgrid[0:48, 0:64].astype(np.float64)
    red = 20 + 215 * cols / 63
    green = 20 + 215 * rows / 47
    blue = 20 + 215 * (0.5 + 0.5 * np.sin((rows + cols) / 9))
    rgb = np.stack([red, green, blue], axis=-1)
    disc = (rows - 32) ** 2 + (cols - 18) ** 2 < 10**2
    rgb[disc] = (40, 60, 200)
    rgb = np.rint(rgb).astype(np.uint8)
    rgb[_RECT] = 255
    few = Image.fromarray(rgb).quantize(256, dither=Image.Dither.NONE, kmeans=3)
    return np.asarray(few.convert("RGB"))


ORIGINAL = _picture()
GREY = np.asarray(Image.fromarray(ORIGINAL).convert("L"))


def _crops_of_array(rgb: np.ndarray, tmp_path, name: str) -> np.ndarray:
    path = tmp_path / name
    Image.fromarray(rgb).save(path)  # PNG: lossless, so these are the array's own crops
    return image_crops(path, RESIZE, CROP, 10)


def _grey16() -> np.ndarray:
    """16-bit levels that round back to GREY (offsets within half a step of 257)."""
    offsets = np.random.default_rng(0).integers(-128, 129, GREY.shape)
    return np.clip(GREY.astype(np.int64) * 257 + offsets, 0, 65535)


def _with_rect(values: np.ndarray, key) -> np.ndarray:
    out = values.copy()
    out[_RECT] = key
    return out


def _save_f_unit(path):
    Image.fromarray((GREY / 255.0).astype(np.float32), mode="F").save(path)


def _save_f_levels(path):
    jitter = np.random.default_rng(1).uniform(-0.4, 0.4, GREY.shape)
    values = np.clip(GREY + jitter, 0, 255).astype(np.float32)
    Image.fromarray(values, mode="F").save(path)


def _save_sixteen(path, **kwargs):
    Image.fromarray(_grey16().astype(np.uint16)).save(path, **kwargs)


def _save_sixteen_big_endian(path):
    Image.fromarray(_grey16().astype(">u2")).save(path)


def _save_i_levels(path):
    Image.fromarray(GREY.astype(np.int32), mode="I").save(path)


def _save_i_sixteen(path):
    Image.fromarray(_grey16().astype(np.int32), mode="I").save(path)


def _save_sixteen_transparent(path):
    Image.fromarray(_with_rect(_grey16(), 1).astype(np.uint16)).save(path, transparency=1)


def _save_l_transparent(path):
    Image.fromarray(_with_rect(GREY, 7)).save(path, transparency=7)


def _save_la(path):
    alpha = np.full(GREY.shape, 255, np.uint8)
    alpha[_RECT] = 0
    Image.fromarray(np.stack([_with_rect(GREY, 0), alpha], axis=-1), mode="LA").save(path)


def _save_rgb_transparent(path):
    Image.fromarray(_with_rect(ORIGINAL, (1, 2, 3))).save(path, transparency=(1, 2, 3))


def _save_cmyk(path, **kwargs):
    Image.fromarray(ORIGINAL).convert("CMYK").save(path, **kwargs)


def _save_palette(path):
    colours, indices = np.unique(ORIGINAL.reshape(-1, 3), axis=0, return_inverse=True)
    palette = Image.fromarray(indices.reshape(ORIGINAL.shape[:2]).astype(np.uint8), mode="P")
    palette.putpalette(colours.astype(np.uint8).ravel().tolist())
    palette.save(path)


def _save_exif_rotated_jpeg(path):
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(ORIGINAL, k=1)))
    exif = stored.getexif()
    exif[0x0112] = 6  # shown after a 90-degree clockwise turn, i.e. as ORIGINAL
    stored.save(path, exif=exif, quality=95, subsampling=0)


# (file name, writer, PIL mode on reading, compared with grey?, lossless?)
CASES = [
    ("f_unit.tif", _save_f_unit, "F", True, True),
    ("f_levels.tif", _save_f_levels, "F", True, True),
    ("grey16.png", _save_sixteen, "I;16", True, True),
    ("grey16.tif", _save_sixteen, "I;16", True, True),
    ("grey16be.tif", _save_sixteen_big_endian, "I;16B", True, True),
    ("grey16_key.png", _save_sixteen_transparent, "I;16", True, True),
    ("i32_levels.tif", _save_i_levels, "I", True, True),
    ("i32_sixteen.tif", _save_i_sixteen, "I", True, True),
    ("l_key.png", _save_l_transparent, "L", True, True),
    ("la.png", _save_la, "LA", True, True),
    ("rgb_key.png", _save_rgb_transparent, "RGB", False, True),
    ("cmyk.tif", _save_cmyk, "CMYK", False, True),
    ("cmyk.jpg", lambda p: _save_cmyk(p, quality=95), "CMYK", False, False),
    ("palette.png", _save_palette, "P", False, True),
    ("rotated.jpg", _save_exif_rotated_jpeg, "RGB", False, False),
]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    folder = tmp_path_factory.mktemp("references")
    return {
        "rgb": _crops_of_array(ORIGINAL, folder, "rgb.png"),
        "grey": _crops_of_array(np.repeat(GREY[:, :, None], 3, axis=2), folder, "grey.png"),
    }


@pytest.mark.parametrize(
    ("name", "save", "mode", "grey", "lossless"), CASES, ids=[c[0] for c in CASES]
)
def test_each_mode_crops_like_the_eight_bit_original(
    tmp_path, references, name, save, mode, grey, lossless
):
    path = tmp_path / name
    save(path)
    with Image.open(path) as image:
        assert image.mode == mode  # the file exercises the mode it is named for
    got = image_crops(path, RESIZE, CROP, 10)
    want = references["grey" if grey else "rgb"]
    assert got.shape == want.shape and got.dtype == np.uint8
    if lossless:
        np.testing.assert_array_equal(got, want)
    else:
        mean_abs = np.abs(got.astype(np.int16) - want.astype(np.int16)).mean()
        assert mean_abs <= _MEAN_ABS_TOLERANCE, f"{name}: mean abs difference {mean_abs:.2f}"
    assert decode_problem(path) is None


def _f_image(values) -> Image.Image:
    return Image.fromarray(np.asarray(values, dtype=np.float32), mode="F")


@pytest.mark.parametrize(
    ("name", "image", "message"),
    [
        ("negative.tif", _f_image([[-0.5, 0.2, 1.0]]), r"mode F\) with values in \[-0.5, 1\]"),
        ("bright.tif", _f_image([[0.0, 12.0, 300.0]]), r"mode F\) with values in \[0, 300\]"),
        ("nan.tif", _f_image([[0.0, np.nan, 1.0]]), "NaN or infinite"),
        ("inf.tif", _f_image([[0.0, np.inf, 1.0]]), "NaN or infinite"),
        (
            "wide.tif",
            Image.fromarray(np.array([[0, 70000]], np.int32), mode="I"),
            r"mode I\) with values in \[0, 70000\]",
        ),
        (
            "signed.tif",
            Image.fromarray(np.array([[-3, 100]], np.int32), mode="I"),
            r"mode I\) with values in \[-3, 100\]",
        ),
    ],
)
def test_values_without_an_eight_bit_reading_are_rejected_naming_the_file(
    tmp_path, name, image, message
):
    path = tmp_path / name
    image.save(path)
    with pytest.raises(ImageValuesError, match=message) as caught:
        load_rgb(path)
    assert str(caught.value).startswith(f"{path}: ")
    # Ingestion rejects the same file, with the reason extraction's decoding (load_rgb) gives.
    assert decode_problem(path) == caught.value.reason
    assert find_decode_problems(tmp_path, [name]) == {name: caught.value.reason}
