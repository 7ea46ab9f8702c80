"""Only an image whose own bytes cannot be decoded is a reject (issue 16, finding 1): a file the
storage cannot give (missing, an I/O error) fails its shard, named, and is never recorded as a
reject that a rerun would keep; a Dask worker that cannot see raw_dir refuses to work."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cnn_feature_behavior.extraction import stream
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

LAYERS = ("conv1_1", "fc7")
SPEC = {"architecture": "vgg16", "preprocessing": "caffe", "layers": list(LAYERS), "weights": []}
MODEL = SourceModel("tiny", SPEC, build_tiny_vgg(seed=2), LAYERS)
SETTINGS = ExtractionSettings(
    n_crops=1, resize=36, crop=32, batch_size=2, shard_size=2, decode_workers=1
)


@pytest.fixture
def images(tmp_path) -> tuple[Path, pd.DataFrame]:
    raw = tmp_path / "raw"
    raw.mkdir()
    names = [f"img{k}.png" for k in range(4)]
    for k, name in enumerate(names):
        pixels = np.random.default_rng(k).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(raw / name)
    return raw, pd.DataFrame({"image_id": [n[:-4] for n in names], "path": names})


def test_a_file_gone_after_planning_fails_its_shard_by_name_and_a_rerun_completes(images, tmp_path):
    raw, index = images
    plan, _ = plan_embedding(index, raw, MODEL, SETTINGS)
    kept = (raw / "img2.png").read_bytes()
    (raw / "img2.png").unlink()  # e.g. a network share that went away
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    with pytest.raises(Exception, match=r"img2\.png: cannot read the image file"):
        dataset.save(plan)
    assert not (tmp_path / "emb/shard-00001.parquet").exists()
    (raw / "img2.png").write_bytes(kept)
    dataset.save(plan_embedding(index, raw, MODEL, SETTINGS)[0])
    assert dataset.rejects() == []
    assert dataset.load().index.tolist() == ["img0", "img1", "img2", "img3"]


def test_an_io_error_of_the_storage_is_no_reject_a_decoder_error_is(images, tmp_path, monkeypatch):
    raw, index = images
    real_decode_rgb = stream.decode_rgb

    def flaky(path):
        if Path(path).name == "img1.png":
            raise OSError(errno.EIO, "Input/output error", str(path))
        if Path(path).name == "img3.png":
            raise OSError("image file is truncated (5 bytes not processed)")  # as PIL says it
        return real_decode_rgb(path)

    monkeypatch.setattr(stream, "decode_rgb", flaky)
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    with pytest.raises(Exception, match=r"img1\.png: cannot read the image file.*Input/output"):
        dataset.save(plan_embedding(index, raw, MODEL, SETTINGS)[0])
    monkeypatch.setattr(
        stream,
        "decode_rgb",
        lambda p: flaky(p) if Path(p).name != "img1.png" else real_decode_rgb(p),
    )
    dataset.save(plan_embedding(index, raw, MODEL, SETTINGS)[0])
    assert [(r.image_id, r.reason.split(":")[0]) for r in dataset.rejects()] == [
        ("img3", "cannot decode")
    ]


def test_a_worker_that_cannot_see_raw_dir_refuses_before_its_first_shard(tmp_path):
    job = ShardJob(
        columns=("conv1_1/n0",),
        model=ModelSource("tiny", {"tiny": SPEC}, str(tmp_path)),
        spec=SPEC,
        layers=LAYERS,
        weights_digest="0",
        settings=SETTINGS,
        working_dir=str(tmp_path),
        raw_dir="not/mounted/here",
    )
    shard = ShardSpec("shard-00000", ("img0",))
    with pytest.raises(FileNotFoundError, match=r"cannot see raw_dir .*not/mounted/here"):
        embed_and_write_shard(job, shard, ["not/mounted/here/img0.png"], str(tmp_path), "f")
    assert not list(tmp_path.glob("*.parquet"))


def test_the_errors_a_worker_raises_survive_pickling():
    import pickle

    from cnn_feature_behavior.extraction.embedding_store import damaged_shard
    from cnn_feature_behavior.extraction.stream import image_read_error

    for error in (
        image_read_error(Path("raw/a.png"), OSError(errno.EIO, "Input/output error")),
        damaged_shard(Path("emb/shard-00001.parquet"), ValueError("magic bytes")),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
