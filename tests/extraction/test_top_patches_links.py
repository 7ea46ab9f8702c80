"""The report's top-feature patches open the dataset's images by the link rule too (issue 27,
finding 5): a file swapped for a link out of raw_dir is left out, named, never opened."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from cnn_feature_behavior.extraction.top_patches import load_centre_crops


def test_a_link_out_of_raw_dir_is_left_out_of_the_pool_and_named(tmp_path, caplog):
    raw = tmp_path / "raw"
    raw.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(raw / "kept.png")
    Image.fromarray(255 - pixels).save(tmp_path / "secret.png")
    (raw / "swapped.png").symlink_to(tmp_path / "secret.png")
    with caplog.at_level(logging.WARNING):
        crops = load_centre_crops(
            [raw / "kept.png", raw / "swapped.png"], 36, 32, "reference pool", inside=raw
        )
    assert len(crops) == 1
    assert "swapped.png" in caplog.text and "outside raw_dir" in caplog.text
