"""Files that changed after ingestion (issue 27, finding 5): a file swapped for a symbolic link out
of raw_dir is never opened by extraction, wherever the link points; a file replaced since
ingestion (its size or modification time differ from image_index's) stops extraction, naming it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset, ShardSpec
from cnn_feature_behavior.extraction.source_models import build_tiny_vgg
from cnn_feature_behavior.extraction.stream import (
    ExtractionSettings,
    ModelSource,
    ShardJob,
    SourceModel,
    embed_and_write_shard,
    plan_embedding,
)
from cnn_feature_behavior.ingestion.index import build_index
from cnn_feature_behavior.ingestion.layouts import scan_layout

LAYERS = ("conv1_1", "fc7")
SPEC = {"architecture": "vgg16", "preprocessing": "caffe", "layers": list(LAYERS), "weights": []}
MODEL = SourceModel("tiny", SPEC, build_tiny_vgg(seed=2), LAYERS)
SETTINGS = ExtractionSettings(
    n_crops=1, resize=36, crop=32, batch_size=2, shard_size=2, decode_workers=1
)


def _image(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def images(tmp_path) -> tuple[Path, pd.DataFrame, Path]:
    """raw_dir in the digits layout (2 classes x 2 images), its index as ingestion writes it,
    and a secret image outside raw_dir."""
    raw = tmp_path / "raw"
    for label in ("a", "b"):
        (raw / label).mkdir(parents=True)
        for k in range(2):
            _image(raw / label / f"{k}.png", seed=10 * len(label) + k + ord(label))
    outside = tmp_path / "outside"
    outside.mkdir()
    _image(outside / "secret.png", seed=99)
    scan = scan_layout("digits", raw, {})
    index, _ = build_index(
        scan,
        raw,
        dataset="digits",
        verify_images=True,
        allow_missing=False,
        max_images_per_class=None,
    )
    return raw, index, outside / "secret.png"


def _swap_for_link(path: Path, target: Path) -> None:
    """Replace `path` by a link to `target` that keeps `path`'s size and modification time (the
    target is cut or padded to the size), so that only the link rule can tell."""
    stat = path.stat()
    with open(target, "r+b") as file:
        file.truncate(stat.st_size)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    path.unlink()
    path.symlink_to(target)


def test_a_link_out_of_raw_dir_put_in_after_ingestion_is_a_reject_not_opened(images, tmp_path):
    raw, index, secret = images
    _swap_for_link(raw / "a" / "1.png", secret)
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(plan_embedding(index, raw, MODEL, SETTINGS)[0])
    rejects = {r.image_id: r.reason for r in dataset.rejects()}
    assert list(rejects) == ["a/1"]
    assert f"symbolic link to {secret}, outside raw_dir" in rejects["a/1"]
    assert dataset.load().index.tolist() == ["a/0", "b/0", "b/1"]


def test_a_dask_worker_keeps_the_link_rule_too(images, tmp_path, monkeypatch):
    from cnn_feature_behavior.extraction import stream

    raw, _, secret = images
    _swap_for_link(raw / "b" / "0.png", secret)
    extractor = stream.build_extractor(MODEL.backbone, LAYERS)
    worker = stream.CropStream(extractor, SPEC, {}, SETTINGS, show_progress=False)
    monkeypatch.setattr(stream, "worker_stream", lambda job: worker)
    job = ShardJob(
        columns=tuple(stream.feature_manifest(extractor, LAYERS)["feature"]),
        model=ModelSource("tiny", {"tiny": SPEC}, str(tmp_path)),
        spec=SPEC,
        layers=LAYERS,
        weights_digest="0",
        settings=SETTINGS,
        working_dir=str(raw.parent),
        raw_dir="raw",
    )
    (tmp_path / "emb").mkdir()
    shard = ShardSpec("shard-00000", ("b/0", "b/1"))
    paths = ["raw/b/0.png", "raw/b/1.png"]
    assert embed_and_write_shard(job, shard, paths, str(tmp_path / "emb"), "fp") == 1


def test_a_link_inside_raw_dir_is_followed(images, tmp_path):
    raw, index, _ = images
    (raw / "b" / "1.png").unlink()
    (raw / "b" / "1.png").symlink_to(raw / "a" / "0.png")
    stat = (raw / "a" / "0.png").stat()
    index.loc[index["image_id"] == "b/1", ["file_size", "file_mtime_ns"]] = [
        stat.st_size,
        stat.st_mtime_ns,
    ]
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(plan_embedding(index, raw, MODEL, SETTINGS)[0])
    assert dataset.rejects() == []
    embedding = dataset.load()
    np.testing.assert_array_equal(embedding.loc["b/1"], embedding.loc["a/0"])


def test_an_image_changed_since_ingestion_stops_extraction_naming_it(images):
    raw, index, _ = images
    _image(raw / "b" / "0.png", seed=123)  # replaced after ingestion: not checked
    with pytest.raises(ValueError, match=r"changed since ingestion.*b/0\.png.*pipelines ingestion"):
        plan_embedding(index, raw, MODEL, SETTINGS)


def test_the_index_records_each_file_as_ingestion_checked_it(images):
    raw, index, _ = images
    stat = (raw / "a" / "1.png").stat()
    row = index.set_index("image_id").loc["a/1"]
    assert (row["file_size"], row["file_mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
