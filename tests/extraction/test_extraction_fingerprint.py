"""What an embedding's fingerprint covers (issue 16, finding 4): the settings, each image file's
size and modification time (or its content, as an option) and the extraction code's version, so
that a changed input is never reused silently and an unchanged shard is never recomputed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cnn_feature_behavior.extraction import stream
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.extraction.source_models import build_tiny_vgg
from cnn_feature_behavior.extraction.stream import ExtractionSettings, SourceModel, plan_embedding

LAYERS = ("conv1_1", "conv5_3", "fc7")
SPEC = {"architecture": "vgg16", "preprocessing": "caffe", "layers": list(LAYERS), "weights": []}
MODEL = SourceModel("tiny", SPEC, build_tiny_vgg(seed=1), LAYERS)


def _write_image(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 44, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def images(tmp_path) -> tuple[Path, pd.DataFrame]:
    raw = tmp_path / "raw"
    raw.mkdir()
    for k in range(6):
        _write_image(raw / f"img{k}.png", seed=k)
    names = [f"img{k}.png" for k in range(6)]
    return raw, pd.DataFrame({"image_id": [n[:-4] for n in names], "path": names})


def _plan(raw, index, fingerprint="stat"):
    settings = ExtractionSettings(
        n_crops=1,
        resize=36,
        crop=32,
        batch_size=4,
        shard_size=2,
        decode_workers=1,
        fingerprint=fingerprint,
    )
    return plan_embedding(index, raw, MODEL, settings)[0]


def test_an_image_replaced_at_the_same_path_recomputes_its_shard_alone(images, tmp_path, caplog):
    raw, index = images
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(raw, index))
    before = dataset.load()
    _write_image(raw / "img3.png", seed=99)  # same name, other pixels
    with caplog.at_level(logging.INFO):
        dataset.save(_plan(raw, index))
    assert "2 of 3 shards already complete, 1 to compute" in caplog.text
    after = dataset.load()
    assert not np.array_equal(after.loc["img3"], before.loc["img3"])
    unchanged = [i for i in before.index if i != "img3"]
    pd.testing.assert_frame_equal(after.loc[unchanged], before.loc[unchanged], check_exact=True)


def test_a_touched_file_changes_the_fingerprint_a_content_hash_only_a_changed_content(images):
    raw, index = images
    stat_before, content_before = _plan(raw, index), _plan(raw, index, "content")
    later = os.stat(raw / "img0.png").st_mtime_ns + 10**9
    os.utime(raw / "img0.png", ns=(later, later))
    assert _plan(raw, index).fingerprint != stat_before.fingerprint
    assert _plan(raw, index, "content").fingerprint == content_before.fingerprint
    # Same size, same modification time, other bytes: only the content hash sees it.
    data = bytearray((raw / "img1.png").read_bytes())
    data[-20] ^= 0xFF
    stat = os.stat(raw / "img1.png")
    (raw / "img1.png").write_bytes(bytes(data))
    os.utime(raw / "img1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _plan(raw, index, "content").fingerprint != content_before.fingerprint


def test_the_extraction_code_version_is_part_of_the_fingerprint(images, monkeypatch):
    raw, index = images
    before = _plan(raw, index)
    monkeypatch.setattr(stream, "EXTRACTION_CODE_VERSION", stream.EXTRACTION_CODE_VERSION + 1)
    after = _plan(raw, index)
    assert after.fingerprint != before.fingerprint
    assert after.description["extraction_code_version"] == stream.EXTRACTION_CODE_VERSION


def test_an_unknown_fingerprint_mode_and_a_missing_file_are_named(images):
    raw, index = images
    with pytest.raises(ValueError, match="feature_extraction.fingerprint must be one of"):
        _plan(raw, index, "mtime")
    (raw / "img4.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"img4\.png.*image_index"):
        _plan(raw, index)


# Issue 27, finding 8: the digest hashed only the biases and the first kernel, and the
# fingerprint left out the libraries that compute the forward pass.


def test_the_weights_digest_covers_every_weight():
    from cnn_feature_behavior.extraction.stream import weights_digest

    model = build_tiny_vgg(seed=1)
    before = weights_digest(model)
    changed = build_tiny_vgg(seed=1)
    kernel = changed.get_layer("block5_conv3").kernel
    values = kernel.numpy()
    values[0, 0, 0, 0] += 1.0
    kernel.assign(values)
    assert weights_digest(changed) != before
    assert weights_digest(build_tiny_vgg(seed=1)) == before
    assert len(before) == 64  # the whole SHA-256


@pytest.mark.parametrize("library", ["tensorflow", "keras", "numpy"])
def test_the_fingerprint_covers_the_libraries_of_the_forward_pass(images, library, monkeypatch):
    raw, index = images
    before = _plan(raw, index)
    assert before.description[library]
    module = {"tensorflow": "tensorflow", "keras": "keras", "numpy": "numpy"}[library]
    monkeypatch.setattr(f"{module}.__version__", "0.0-other")
    assert _plan(raw, index).fingerprint != before.fingerprint
