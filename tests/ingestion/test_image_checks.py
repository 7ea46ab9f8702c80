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


# Issue 27, finding 4: a 16-bit image inside the pixel limits cost 2.0 GB to check (float64
# copies of the whole image), on up to 6 ingestion threads at once.

_PEAK = """
import resource, sys
from pathlib import Path
from cnn_feature_behavior.extraction.crops import image_crops
from cnn_feature_behavior.ingestion.image_checks import decode_problem
path = Path(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] == "check":
    outcome = decode_problem(path)
else:
    outcome = image_crops(path, 256, 224, 10).shape
print(outcome, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def _peak_bytes(step: str, path) -> tuple[str, int]:
    """What `step` (check: ingestion's decode check; extract: the extraction's 10 crops) gives
    for the image at `path`, and how far it raised a fresh process's peak memory."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _PEAK, step, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    outcome, peak = result.stdout.strip().rsplit(" ", 1)
    return outcome, int(peak)


@pytest.mark.parametrize(
    ("mode", "size", "value"),
    [("I;16", (7_000, 5_000), 40_000), ("RGBA", (5_000, 5_000), (10, 200, 30, 128))],
)
def test_checking_and_extracting_a_large_image_stays_under_half_a_gigabyte(
    tmp_path, mode, size, value
):
    path = tmp_path / "large.png"
    Image.new(mode, size, value).save(path, compress_level=1)
    for step in ("check", "extract"):
        outcome, peak = _peak_bytes(step, path)
        assert outcome in ("None", "(10, 224, 224, 3)"), outcome
        assert peak < 500_000_000, f"{step} of a {mode} {size} image peaked {peak:,} bytes above"


def test_the_decoded_bytes_limit_counts_what_the_mode_costs():
    from cnn_feature_behavior.ingestion.image_checks import ImageLimits, decoded_bytes

    limits = ImageLimits()
    # At PIL's pixel limit: RGB fits (4 bytes a pixel); 16-bit grey needs 2 + 1 + 4.
    assert limits.problem(9_459, 9_459, 256, "RGB") is None
    problem = limits.problem(9_459, 9_459, 256, "I;16")
    assert "too large to decode: 9459 x 9459 in mode I;16 takes 626,308,767 bytes" in problem
    assert "ingestion.image_limits.max_decoded_bytes" in problem
    assert decoded_bytes(10, 10, "L") == 500 and decoded_bytes(10, 10, "F") == 900


def test_decoding_threads_hold_no_more_than_their_memory_budget():
    import threading
    import time

    from cnn_feature_behavior.ingestion.image_checks import MemoryBudget

    budget = MemoryBudget(100)
    held, most = [0], [0]
    lock = threading.Lock()

    def decode(size: int) -> None:
        counted = min(size, 100)  # an image larger than the budget holds all of it
        with budget.reserve(size):
            with lock:
                held[0] += counted
                most[0] = max(most[0], held[0])
            time.sleep(0.02)
            with lock:
                held[0] -= counted

    threads = [threading.Thread(target=decode, args=(size,)) for size in (60, 60, 30, 500, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert most[0] <= 100  # never two of 60 at once; the 500 alone
    assert budget.held == 0


def test_the_ingestion_check_waits_for_its_image_in_the_budget(tmp_path):
    from contextlib import contextmanager

    from cnn_feature_behavior.ingestion.image_checks import find_decode_problems

    Image.new("I;16", (40, 30)).save(tmp_path / "a.png")
    reserved = []

    class Recording:
        @contextmanager
        def reserve(self, amount):
            reserved.append(amount)
            yield

    from cnn_feature_behavior.ingestion import image_checks

    assert image_checks.decode_problem(tmp_path / "a.png", budget=Recording()) is None
    assert reserved == [40 * 30 * 2]
    assert find_decode_problems(tmp_path, ["a.png"], memory_bytes=10) == {}
