"""Feature blocks on long-lived Dask workers (issue 16, findings 2 and 9): a worker's reader never
serves an embedding rewritten at the same path, the driver checks every block's fingerprint, and
task keys are unique across runs and clients of one scheduler."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_dks_blocks import write_shards

from cnn_feature_behavior.statistics import blocks, calibration, dks

TIMEOUT_S = 120


@pytest.fixture(scope="module")
def client():
    """An in-process cluster (no sockets): its workers share this process's reader cache."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster, timeout=TIMEOUT_S) as dask_client,
    ):
        yield dask_client


def _labels(n_images: int):
    labels = np.arange(n_images) % 3
    return dks.check_labellings(
        [labels, *calibration.permuted_labels(labels, 1, seed=1)], ["a", "b", "c"]
    )


def _statistics(folder, client=None):
    label_sets, sizes = _labels(60)
    return blocks.feature_block_statistics(
        blocks.ShardColumnReader(folder),
        label_sets,
        sizes,
        blocks.StatisticSettings(bins=None),
        block_features=2,
        client=client,
    )


@pytest.mark.parametrize("same_fingerprint", [False, True])
def test_an_embedding_rewritten_at_the_same_path_is_read_anew(client, tmp_path, same_fingerprint):
    rng = np.random.default_rng(0)
    folder = tmp_path / "embedding"
    write_shards(folder, rng.standard_normal((60, 5)).astype(np.float32), shard_size=25)
    _statistics(folder, client)
    # Re-extracted (e.g. crops 10 then 1): other values at the same path.
    if same_fingerprint:
        shutil.rmtree(folder)  # else the same plan keeps its complete shards
    write_shards(
        folder,
        rng.standard_normal((60, 5)).astype(np.float32),
        shard_size=25,
        fingerprint="test" if same_fingerprint else "other",
    )
    np.testing.assert_array_equal(_statistics(folder, client).dks, _statistics(folder).dks)


def test_a_block_computed_from_another_plan_is_refused(client, tmp_path, monkeypatch):
    folder = tmp_path / "embedding"
    write_shards(folder, np.ones((60, 4), np.float32), shard_size=30)
    real = blocks.compute_block

    def from_elsewhere(*args, **kwargs):
        return {**real(*args, **kwargs), "fingerprint": "another plan"}

    monkeypatch.setattr(blocks, "compute_block", from_elsewhere)
    with pytest.raises(RuntimeError, match="another plan.*feature_extraction"):
        _statistics(folder, client)


def test_block_task_keys_are_unique_across_runs(client, tmp_path, monkeypatch):
    folder = tmp_path / "embedding"
    write_shards(folder, np.ones((60, 4), np.float32), shard_size=30)
    keys: list[set[str]] = []
    real_submit = type(client).submit

    def recording_submit(self, *args, key=None, **kwargs):
        keys[-1].add(key)
        return real_submit(self, *args, key=key, **kwargs)

    monkeypatch.setattr(type(client), "submit", recording_submit)
    for _ in range(3):
        keys.append(set())
        _statistics(folder, client)  # the result is dropped: an id() would be reused
    assert all(len(k) == 2 for k in keys)
    assert not (keys[0] & keys[1]) and not (keys[1] & keys[2]) and not (keys[0] & keys[2])
