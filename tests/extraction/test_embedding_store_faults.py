"""ShardedEmbeddingDataset under faults: power loss (fsync), a garbled plan.json, two runs on one
folder (the lock), a damaged shard."""

from __future__ import annotations

import logging
import os

import pandas as pd
import pytest
from test_embedding_dataset import IDS, _expected, _plan

from cnn_feature_behavior.extraction import embedding_store
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset


def test_shards_and_plan_reach_the_disk_before_they_are_renamed(tmp_path, monkeypatch):
    synced: set[str] = set()
    renamed: list[tuple[str, bool]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        synced.add(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    def replace(source, target):
        renamed.append((os.path.basename(target), os.path.abspath(source) in synced))
        real_replace(source, target)

    monkeypatch.setattr(embedding_store.os, "fsync", fsync)
    monkeypatch.setattr(embedding_store.os, "replace", replace)
    ShardedEmbeddingDataset(path=str(tmp_path / "emb")).save(_plan(IDS))
    assert sorted(renamed) == [
        ("plan.json", True),
        ("shard-00000.parquet", True),
        ("shard-00000.parquet.sha256", True),
        ("shard-00001.parquet", True),
        ("shard-00001.parquet.sha256", True),
        ("shard-00002.parquet", True),
        ("shard-00002.parquet.sha256", True),
    ]
    assert str(tmp_path / "emb") in synced  # the folder too, so that the renames are durable


@pytest.mark.parametrize("garbage", [b"", b'{"fingerprint": "f1", "col', b"[1, 2]", b"\xff\xfe"])
def test_a_garbled_plan_is_a_stale_plan_discarded_with_a_warning(tmp_path, caplog, garbage):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS))
    (tmp_path / "emb/plan.json").write_bytes(garbage)  # what a power loss can leave
    computed: list[str] = []
    with caplog.at_level(logging.WARNING):
        dataset.save(_plan(IDS, computed=computed))
    assert "plan.json" in caplog.text and "unreadable" in caplog.text
    assert computed == ["shard-00000", "shard-00001", "shard-00002"]
    pd.testing.assert_frame_equal(dataset.load(), _expected(IDS), check_exact=True)


def test_the_block_reader_names_a_garbled_plan_and_the_way_out(tmp_path):
    from cnn_feature_behavior.statistics.blocks import ShardColumnReader

    ShardedEmbeddingDataset(path=str(tmp_path / "emb")).save(_plan(IDS))
    (tmp_path / "emb/plan.json").write_bytes(b'{"fingerprint": ')
    with pytest.raises(ValueError, match=r"plan.json is unreadable.*feature_extraction"):
        ShardColumnReader(tmp_path / "emb")


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_a_damaged_shard_is_named_by_every_reader(tmp_path, damage):
    from cnn_feature_behavior.statistics.blocks import ShardColumnReader

    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS))
    shard = tmp_path / "emb/shard-00001.parquet"
    content = shard.read_bytes()
    damaged = {"truncated": content[:-9], "empty": b"", "garbage": b"PAR1" + bytes(300)}[damage]
    shard.write_bytes(damaged)
    with pytest.raises(OSError, match=r"shard-00001\.parquet is damaged.*feature_extraction"):
        ShardColumnReader(tmp_path / "emb").image_ids()
    # Extraction recomputes it (test_embedding_dataset: a damaged shard is named and recomputed).
    computed: list[str] = []
    dataset.save(_plan(IDS, computed=computed))
    assert computed == ["shard-00001"]
    assert ShardColumnReader(tmp_path / "emb").image_ids() == IDS


def test_a_shard_damaged_after_the_check_is_named_when_loaded(tmp_path, monkeypatch):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS))
    monkeypatch.setattr(ShardedEmbeddingDataset, "_shard_matches", lambda *a, **k: True)
    (tmp_path / "emb/shard-00002.parquet").write_bytes(b"PAR1 nothing")
    with pytest.raises(Exception, match=r"shard-00002\.parquet is damaged"):
        dataset.load()


def _lock_of(folder, host: str, pid: int) -> None:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".lock").write_text(json.dumps({"host": host, "pid": pid, "since": "earlier"}))


def test_a_second_run_on_the_folder_fails_naming_the_holder(tmp_path):
    import socket
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_of(tmp_path / "emb", socket.gethostname(), holder.pid)
        computed: list[str] = []
        with pytest.raises(Exception, match=rf"in use by process {holder.pid} on .*\.lock"):
            ShardedEmbeddingDataset(path=str(tmp_path / "emb")).save(_plan(IDS, computed=computed))
        assert computed == []
        _lock_of(tmp_path / "emb", "another-machine", 12345)
        with pytest.raises(Exception, match="process 12345 on another-machine"):
            ShardedEmbeddingDataset(path=str(tmp_path / "emb")).save(_plan(IDS))
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over_and_released(tmp_path, caplog):
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock_of(tmp_path / "emb", socket.gethostname(), dead.pid)
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    with caplog.at_level(logging.WARNING):
        dataset.save(_plan(IDS))
    assert "stale lock" in caplog.text and str(dead.pid) in caplog.text
    assert not (tmp_path / "emb/.lock").exists()
    pd.testing.assert_frame_equal(dataset.load(), _expected(IDS), check_exact=True)


def test_the_lock_is_held_while_saving_and_released_on_failure(tmp_path):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    plan = _plan(IDS)
    seen = []

    def failing(todo):
        seen.append((tmp_path / "emb/.lock").read_text())
        raise RuntimeError("boom")
        yield

    with pytest.raises(Exception, match="boom"):
        dataset.save(
            embedding_store.EmbeddingPlan(plan.fingerprint, plan.columns, plan.shards, failing)
        )
    assert f'"pid": {os.getpid()}' in seen[0]
    assert not (tmp_path / "emb/.lock").exists()


def test_a_lock_whose_process_id_was_reused_is_stale(tmp_path, caplog):
    import json
    import socket

    from cnn_feature_behavior.extraction import folder_lock

    started = folder_lock._process_start(os.getpid())
    if started is None:
        pytest.skip("no /proc here: process start times are unknown")
    (tmp_path / "emb").mkdir()
    # This test's own pid, as if a killed run's id had been given to this (later) process.
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": started - 1}
    (tmp_path / "emb/.lock").write_text(json.dumps(holder))
    with caplog.at_level(logging.WARNING):
        ShardedEmbeddingDataset(path=str(tmp_path / "emb")).save(_plan(IDS))
    assert "stale lock" in caplog.text
