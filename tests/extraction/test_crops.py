"""Crop geometry and decoding of every image mode (cnn_feature_behavior.extraction.crops)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnn_feature_behavior.extraction.crops import (
    crop_geometry,
    crop_origins,
    crops_of,
    image_crops,
    load_rgb,
    resize_shorter_side,
)


def _numbered_image(height: int, width: int) -> np.ndarray:
    """Each pixel holds its own coordinates, so every crop is identifiable."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows % 256, cols % 256, (rows + cols) % 256], axis=-1).astype(np.uint8)


def test_ten_crops_are_corners_centre_and_mirrors():
    image = _numbered_image(7, 10)
    crops = crops_of(image, crop=4, n_crops=10)
    expected_origins = [(0, 0), (0, 6), (3, 0), (3, 6), (1, 3)]
    expected = [image[top : top + 4, left : left + 4] for top, left in expected_origins]
    expected += [
        np.array([[row[4 - 1 - j] for j in range(4)] for row in crop]) for crop in expected
    ]
    assert crops.shape == (10, 4, 4, 3)
    for got, want in zip(crops, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_one_crop_is_the_centre():
    image = _numbered_image(9, 12)
    (centre,) = crops_of(image, crop=5, n_crops=1)
    np.testing.assert_array_equal(centre, image[2:7, 3:8])


def test_crop_origins_for_a_square_image_are_all_zero_when_crop_fills_it():
    assert crop_origins(6, 6, 6) == [(0, 0)] * 5


@pytest.mark.parametrize(("n_crops", "crop"), [(3, 4), (10, 11)])
def test_bad_crop_requests_are_refused(n_crops, crop):
    with pytest.raises(ValueError, match="crop"):
        crops_of(_numbered_image(10, 10), crop=crop, n_crops=n_crops)


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((100, 300), 50, (50, 150)),
        ((300, 100), 50, (150, 50)),
        ((40, 40), 256, (256, 256)),
        ((30, 45), 256, (256, 384)),
    ],
)
def test_shorter_side_is_resized_and_small_images_upscaled(shape, size, expected):
    resized = resize_shorter_side(np.zeros((*shape, 3), np.uint8), size)
    assert resized.shape == (*expected, 3)
    assert resized.dtype == np.uint8


def test_resize_keeps_a_flat_colour():
    image = np.full((60, 90, 3), (10, 200, 77), np.uint8)
    np.testing.assert_array_equal(
        resize_shorter_side(image, 37), np.full((37, 56, 3), (10, 200, 77), np.uint8)
    )


def _save(image: Image.Image, tmp_path, name: str, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_greyscale_palette_and_cmyk_decode_to_rgb(tmp_path):
    grey = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8), mode="L")
    got = load_rgb(_save(grey, tmp_path, "grey.png"))
    np.testing.assert_array_equal(got, np.repeat(np.asarray(grey)[:, :, None], 3, axis=2))

    rgb = _numbered_image(6, 8)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    np.testing.assert_array_equal(
        load_rgb(_save(palette, tmp_path, "p.png")), np.asarray(palette.convert("RGB"))
    )

    cmyk = Image.new("CMYK", (5, 4), (0, 255, 255, 0))  # pure red in CMYK
    np.testing.assert_array_equal(
        load_rgb(_save(cmyk, tmp_path, "c.tif")), np.full((4, 5, 3), (255, 0, 0), np.uint8)
    )

    bilevel = Image.new("1", (3, 2), 1)
    np.testing.assert_array_equal(
        load_rgb(_save(bilevel, tmp_path, "b.png")), np.full((2, 3, 3), 255, np.uint8)
    )


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (100, 50, 0, 255)  # opaque
    rgba[0, 1] = (100, 50, 0, 0)  # fully transparent
    rgba[1, :] = (0, 0, 200, 128)  # half transparent
    got = load_rgb(_save(Image.fromarray(rgba, mode="RGBA"), tmp_path, "a.png"))
    np.testing.assert_array_equal(got[0, 0], (100, 50, 0))
    np.testing.assert_array_equal(got[0, 1], (255, 255, 255))
    alpha = 128 / 255
    np.testing.assert_allclose(got[1, 0], np.array([0, 0, 200]) * alpha + 255 * (1 - alpha), atol=1)

    grey_alpha = Image.new("LA", (2, 1), (0, 0))
    np.testing.assert_array_equal(
        load_rgb(_save(grey_alpha, tmp_path, "la.png")), np.full((1, 2, 3), 255, np.uint8)
    )


def test_sixteen_bit_images_are_scaled_to_eight_bits(tmp_path):
    values = np.array([[0, 257, 65535], [32896, 1000, 60000]], dtype=np.uint16)
    sixteen = Image.fromarray(values)  # mode I;16
    got = load_rgb(_save(sixteen, tmp_path, "16.png"))
    expected = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(got, np.repeat(expected[:, :, None], 3, axis=2))


def test_float_images_are_read_by_their_range(tmp_path):
    levels = np.array([[0.0, 12.4, 254.6]], dtype=np.float32)
    got = load_rgb(_save(Image.fromarray(levels, mode="F"), tmp_path, "f.tif"))
    np.testing.assert_array_equal(got[0, :, 0], [0, 12, 255])
    unit = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    got = load_rgb(_save(Image.fromarray(unit, mode="F"), tmp_path, "unit.tif"))
    np.testing.assert_array_equal(got[0, :, 0], [0, 128, 255])
    # Out of both ranges: rejected (tests/test_image_modes.py covers the reasons).
    outside = np.array([[-5.0, 12.4, 300.0]], dtype=np.float32)
    with pytest.raises(ValueError, match="outside.tif"):
        load_rgb(_save(Image.fromarray(outside, mode="F"), tmp_path, "outside.tif"))


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[0, 0] = 255  # a white top-left pixel, in the stored orientation
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    path = _save(image, tmp_path, "rot.png", exif=exif)
    got = load_rgb(path)
    assert got.shape == (6, 4, 3)
    np.testing.assert_array_equal(got, np.rot90(pixels, k=-1))


def test_truncated_jpeg_fails_to_decode(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buffer, "JPEG"
    )
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(OSError):
        load_rgb(path)


def test_image_crops_decodes_resizes_and_crops(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    path = _save(Image.fromarray(pixels), tmp_path, "x.png")
    got = image_crops(path, resize=20, crop=16, n_crops=10)
    expected = crops_of(resize_shorter_side(pixels, 20), 16, 10)
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="larger than"):
        image_crops(path, resize=20, crop=24, n_crops=1)


@pytest.mark.parametrize(
    ("input_size", "expected"),
    [
        (None, (256, 224)),
        (224, (256, 224)),
        (299, (342, 299)),
        (331, (378, 331)),
        (112, (128, 112)),
    ],
)
def test_crops_follow_a_fixed_input_size_keeping_the_resize_ratio(input_size, expected):
    assert crop_geometry(input_size, 256, 224) == expected


# Size limits (issue 16, finding 3): a tiny file must not ask for gigabytes once resized
# (the limits themselves: tests/ingestion/test_image_checks.py).


def test_resize_refuses_an_extreme_aspect_ratio_before_allocating(tmp_path):
    from cnn_feature_behavior.ingestion.image_checks import ImageLimits, ImageSizeError

    thin = np.zeros((1, 2_000, 3), np.uint8)
    with pytest.raises(ImageSizeError, match="aspect ratio 2000:1"):
        resize_shorter_side(thin, 256, limits=ImageLimits(max_aspect_ratio=20))
    # The built-in ceilings refuse the 1 x 100,000 image, which would ask for 25,600,000 x 256.
    with pytest.raises(ImageSizeError, match="aspect ratio 100000:1"):
        resize_shorter_side(np.zeros((1, 100_000, 3), np.uint8), 256)


def test_load_rgb_refuses_too_many_pixels_naming_the_file(tmp_path):
    from cnn_feature_behavior.ingestion.image_checks import ImageLimits, ImageSizeError

    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    with pytest.raises(ImageSizeError, match="10,000 pixels") as caught:
        load_rgb(path, limits=ImageLimits(max_decoded_pixels=5_000))
    assert str(path) in str(caught.value)
    assert load_rgb(path).shape == (100, 100, 3)


# The one centre crop is resampled from the source region it covers alone (issue 15: decoding
# must keep up with a fast model), not cut from the whole resized image as the ten crops are.


@pytest.mark.parametrize(
    ("height", "width"),
    [
        (3, 4),  # tiny: upscaled
        (254, 300),  # Caltech-101-like
        (500, 333),  # portrait
        (375, 500),  # ImageNet-like
        (256, 400),  # shorter side already 256: only the longer axis is cut
        (1536, 2048),  # large: downscaled 6x
        (2000, 101),  # thin: about 20:1
    ],
)
def test_one_crop_matches_the_centre_of_the_resized_image_within_two_levels(
    tmp_path, height, width
):
    pixels = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)
    path = _save(Image.fromarray(pixels), tmp_path, "x.png")
    (whole_centre,) = crops_of(resize_shorter_side(pixels, 256), 224, 1)
    got = image_crops(path, 256, 224, 1)
    assert got.shape == (1, 224, 224, 3) and got.dtype == np.uint8
    # Noise: a region off by a fraction of a pixel would differ by tens of levels. Rounding
    # differs (PIL's intermediate 8-bit pass, its float32 corners): a level or two, here and there.
    difference = np.abs(got[0].astype(int) - whole_centre)
    assert difference.max() <= 2
    assert difference.mean() < 0.5


def test_one_crop_of_real_photographs_rarely_differs_from_the_whole_resize(shared_datasets):
    paths = sorted(shared_datasets.rglob("*.jp*g"))[::20]
    differing = []
    for path in paths:
        (whole_centre,) = crops_of(resize_shorter_side(load_rgb(path), 256), 224, 1)
        difference = np.abs(image_crops(path, 256, 224, 1)[0].astype(int) - whole_centre)
        assert difference.max() <= 2, path
        differing.append(np.count_nonzero(difference) / difference.size)
    assert len(paths) >= 20 and np.mean(differing) < 0.05


@pytest.mark.parametrize(("height", "width"), [(256, 256), (224, 224), (256, 257), (300, 256)])
def test_one_crop_is_exact_where_the_image_needs_no_resize(tmp_path, height, width):
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), np.uint8)
    path = _save(Image.fromarray(pixels), tmp_path, "x.png")
    resize = min(height, width)
    np.testing.assert_array_equal(
        image_crops(path, resize, 224, 1), crops_of(resize_shorter_side(pixels, resize), 224, 1)
    )


def test_one_crop_keeps_the_size_limits_naming_the_file(tmp_path):
    from cnn_feature_behavior.ingestion.image_checks import ImageLimits, ImageSizeError

    path = _save(Image.new("RGB", (400, 10)), tmp_path, "thin.png")
    with pytest.raises(ImageSizeError, match="aspect ratio 40:1") as caught:
        image_crops(path, 256, 224, 1, limits=ImageLimits(max_aspect_ratio=20))
    assert str(path) in str(caught.value)
