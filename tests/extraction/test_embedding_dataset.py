"""ShardedEmbeddingDataset: atomic shards, resume, stale plans, column blocks."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from cnn_feature_behavior.extraction.embedding_store import (
    EmbeddingPlan,
    ShardedEmbeddingDataset,
    ShardSpec,
)

COLUMNS = ("conv1_1/n0", "conv1_1/n1", "fc6/n0")


def _features(image_id: str) -> np.ndarray:
    seed = sum(map(ord, image_id))
    return np.random.default_rng(seed).standard_normal(len(COLUMNS)).astype(np.float32)


def _plan(
    image_ids: list[str], shard_size: int = 2, fingerprint: str = "f1", computed: list | None = None
) -> EmbeddingPlan:
    shards = tuple(
        ShardSpec(f"shard-{k:05d}", tuple(image_ids[i : i + shard_size]))
        for k, i in enumerate(range(0, len(image_ids), shard_size))
    )

    def compute(todo):
        for shard in todo:
            if computed is not None:
                computed.append(shard.name)
            yield shard, np.stack([_features(i) for i in shard.image_ids])

    return EmbeddingPlan(fingerprint=fingerprint, columns=COLUMNS, shards=shards, compute=compute)


def _expected(image_ids: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [_features(i) for i in image_ids],
        index=pd.Index(image_ids, name="image_id"),
        columns=list(COLUMNS),
    )
    return frame.astype(np.float32)


IDS = [f"class_a/img{k}" for k in range(5)]


def test_save_then_load_gives_rows_in_order_and_float32(tmp_path):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS))
    loaded = dataset.load()
    pd.testing.assert_frame_equal(loaded, _expected(IDS), check_exact=True)
    assert sorted(p.name for p in (tmp_path / "emb").iterdir()) == [
        "plan.json",
        "shard-00000.parquet",
        "shard-00000.parquet.sha256",
        "shard-00001.parquet",
        "shard-00001.parquet.sha256",
        "shard-00002.parquet",
        "shard-00002.parquet.sha256",
    ]
    assert dataset.exists()
    assert dataset.feature_columns() == list(COLUMNS)


def test_a_block_of_columns_is_read_alone(tmp_path):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS))
    block = dataset.load_columns(["fc6/n0", "conv1_1/n0"])
    pd.testing.assert_frame_equal(block, _expected(IDS)[["fc6/n0", "conv1_1/n0"]], check_exact=True)
    configured = ShardedEmbeddingDataset(
        path=str(tmp_path / "emb"), load_args={"columns": ["conv1_1/n1"]}
    )
    assert list(configured.load().columns) == ["conv1_1/n1"]
    with pytest.raises(DatasetError, match="no feature columns"):
        dataset.load_columns(["conv9_9/n0"])


def test_rerun_computes_only_missing_shards(tmp_path):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS))
    (tmp_path / "emb/shard-00001.parquet").unlink()
    computed: list[str] = []
    dataset.save(_plan(IDS, computed=computed))
    assert computed == ["shard-00001"]
    pd.testing.assert_frame_equal(dataset.load(), _expected(IDS), check_exact=True)


def test_incomplete_embedding_refuses_to_load(tmp_path):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS))
    (tmp_path / "emb/shard-00002.parquet").unlink()
    assert not dataset.exists()
    with pytest.raises(DatasetError, match="incomplete: 1 of 3 shards.*shard-00002"):
        dataset.load()
    with pytest.raises(DatasetError, match="run the feature_extraction pipeline"):
        ShardedEmbeddingDataset(path=str(tmp_path / "nothing")).load()


def test_leftover_partial_files_are_never_read_and_are_cleaned(tmp_path):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS))
    shard = tmp_path / "emb/shard-00001.parquet"
    partial = tmp_path / "emb/.shard-00001.parquet.999.partial"
    partial.write_bytes(shard.read_bytes()[:100])  # what a kill during a write leaves
    shard.unlink()
    with pytest.raises(DatasetError, match="incomplete"):
        dataset.load()
    computed: list[str] = []
    dataset.save(_plan(IDS, computed=computed))
    assert computed == ["shard-00001"]
    assert not partial.exists()
    pd.testing.assert_frame_equal(dataset.load(), _expected(IDS), check_exact=True)


def test_shards_of_another_plan_are_discarded_not_mixed(tmp_path, caplog):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS, fingerprint="old"))
    other_ids = IDS[1:]
    computed: list[str] = []
    with caplog.at_level(logging.WARNING):
        dataset.save(_plan(other_ids, fingerprint="new", computed=computed))
    assert computed == ["shard-00000", "shard-00001"]
    assert "another plan" in caplog.text
    pd.testing.assert_frame_equal(dataset.load(), _expected(other_ids), check_exact=True)
    assert json.loads((tmp_path / "emb/plan.json").read_text())["fingerprint"] == "new"


def test_a_shard_with_a_foreign_fingerprint_is_recomputed(tmp_path):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS, fingerprint="a"))
    foreign = ShardedEmbeddingDataset(path=str(tmp_path / "foreign"))
    foreign.save(_plan(IDS, fingerprint="b"))
    (tmp_path / "foreign/shard-00001.parquet").replace(tmp_path / "emb/shard-00001.parquet")
    with pytest.raises(DatasetError, match="incomplete"):
        dataset.load()
    computed: list[str] = []
    dataset.save(_plan(IDS, fingerprint="a", computed=computed))
    assert computed == ["shard-00001"]


def test_wrong_computed_shapes_and_types_are_refused(tmp_path):
    plan = _plan(IDS)
    bad = EmbeddingPlan(
        fingerprint="x",
        columns=COLUMNS,
        shards=plan.shards,
        compute=lambda todo: ((s, np.zeros((len(s.image_ids), 3), np.float64)) for s in todo),
    )
    with pytest.raises(DatasetError, match="shard-00000 computed as float64"):
        ShardedEmbeddingDataset(path=str(tmp_path / "emb")).save(bad)
    with pytest.raises(DatasetError, match="expected an EmbeddingPlan"):
        ShardedEmbeddingDataset(path=str(tmp_path / "emb")).save(pd.DataFrame())


def test_an_empty_plan_loads_as_an_empty_frame(tmp_path):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan([]))
    loaded = dataset.load()
    assert (
        loaded.empty and list(loaded.columns) == list(COLUMNS) and loaded.index.name == "image_id"
    )


def test_unknown_load_args_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown load_args"):
        ShardedEmbeddingDataset(path=str(tmp_path), load_args={"filters": []})


def test_a_killed_rerun_with_another_shard_size_never_loads_old_shards(tmp_path):
    ids = [f"class_a/img{k}" for k in range(8)]
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(ids, shard_size=2))  # shard-00002 holds img4, img5
    resized = _plan(ids, shard_size=3)  # same fingerprint; shard-00002 must hold img6, img7

    def killed_before_the_last_shard(todo):
        for shard, features in resized.compute(todo):
            if shard.name == "shard-00002":
                raise KeyboardInterrupt
            yield shard, features

    with pytest.raises(KeyboardInterrupt):
        dataset.save(
            EmbeddingPlan(
                resized.fingerprint, COLUMNS, resized.shards, killed_before_the_last_shard
            )
        )
    with pytest.raises(DatasetError, match="incomplete"):
        dataset.load()
    dataset.save(resized)
    pd.testing.assert_frame_equal(dataset.load(), _expected(ids), check_exact=True)


def test_a_damaged_shard_is_named_and_recomputed(tmp_path, caplog):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS))
    (tmp_path / "emb/shard-00001.parquet").write_bytes(
        b""
    )  # what a crash before the data hit the disk leaves
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(DatasetError, match="incomplete.*shard-00001"),
    ):
        dataset.load()
    assert "shard-00001.parquet" in caplog.text
    assert not dataset.exists()
    computed: list[str] = []
    dataset.save(_plan(IDS, computed=computed))
    assert computed == ["shard-00001"]
    pd.testing.assert_frame_equal(dataset.load(), _expected(IDS), check_exact=True)
