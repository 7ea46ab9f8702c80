"""The size limits an image is checked against (issue 16, finding 3): a tiny file must not ask for
gigabytes once resized."""

from __future__ import annotations

import pytest
from PIL import Image


def test_pil_pixel_limit_is_set_explicitly_to_the_ceiling():
    from cnn_feature_behavior.ingestion.image_checks import CEILINGS

    assert Image.MAX_IMAGE_PIXELS == CEILINGS.max_decoded_pixels


def test_size_problem_names_aspect_ratio_resized_area_and_decoded_pixels():
    from cnn_feature_behavior.ingestion.image_checks import ImageLimits

    limits = ImageLimits(max_decoded_pixels=150_000, max_aspect_ratio=20, max_resized_pixels=50_000)
    assert limits.problem(40, 30, resize=64) is None
    assert "aspect ratio 100000:1" in limits.problem(100_000, 1, resize=64)
    assert "above the limit 20" in limits.problem(1, 100_000, resize=64)
    # 64 x 1024 once resized: 65,536 pixels, above 50,000, although the ratio 16 is allowed.
    assert "65,536 pixels once resized" in limits.problem(1024, 64, resize=64)
    assert "500 x 400 = 200,000 pixels" in limits.problem(500, 400, resize=None)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"max_aspect_ratio": 0}, "max_aspect_ratio must be a positive number"),
        ({"max_aspect_ratio": "x"}, "max_aspect_ratio must be a positive number"),
        ({"max_pixels": 3}, "unknown key"),
        ({"max_resized_pixels": 10**12}, "above the built-in ceiling"),
    ],
)
def test_image_limits_from_params_name_the_parameter(settings, problem):
    from cnn_feature_behavior.ingestion.image_checks import image_limits_from_params

    with pytest.raises(ValueError, match=problem) as caught:
        image_limits_from_params(settings)
    assert "ingestion.image_limits" in str(caught.value)


def test_image_limits_from_params_defaults_and_overrides():
    from cnn_feature_behavior.ingestion.image_checks import ImageLimits, image_limits_from_params

    assert image_limits_from_params(None) == ImageLimits()
    assert image_limits_from_params({"max_aspect_ratio": 5}).max_aspect_ratio == 5
