"""Statistics by feature block (statistics/blocks.py, the compiled kernels) against references:
the in-memory statistics, scipy's ks_2samp, the pipeline on real shards, and a Dask cluster
(with and without a worker killed mid-run)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pytest
from builders.dask_cluster import loopback_cluster
from scipy.stats import ks_2samp

from cnn_feature_behavior.extraction.embedding_store import (
    EmbeddingPlan,
    ShardedEmbeddingDataset,
    ShardSpec,
)
from cnn_feature_behavior.statistics import blocks, calibration, dks
from cnn_feature_behavior.statistics.histogram_distances import histogram_distances


def tied_case(seed: int = 0):
    """Values with ties inside and across classes, a one-image class, a constant feature, -0.0."""
    rng = np.random.default_rng(seed)
    sizes = [1, 2, 7, 30, 40]
    labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes)).astype(np.int64)
    values = rng.integers(-2, 3, (labels.size, 6)).astype(np.float32)
    values[:, 1] = 3.0  # constant
    values[:, 2] = rng.standard_normal(labels.size).astype(np.float32) + labels
    values[::3, 3] = -0.0  # equal to the 0.0 elsewhere in the column
    values[:, 4] = np.maximum(values[:, 2], 0)  # ReLU-like: many exact zeros
    return values, labels, [f"class{c}" for c in range(len(sizes))]


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # 1-image samples
def test_several_labellings_from_one_sort_match_scipy_with_ties():
    values, labels, names = tied_case()
    permutations = calibration.permuted_labels(labels, 3, seed=5)
    result = dks.signed_ks_labellings(values, [labels, *permutations], names, bins=None)
    for labelling, current in enumerate([labels, *permutations]):
        for f in range(values.shape[1]):
            for c in range(len(names)):
                inner, outer = values[current == c, f], values[current != c, f]
                # float64: scipy >= 1.18 returns the statistic in its inputs' float32.
                reference = ks_2samp(inner.astype(np.float64), outer.astype(np.float64))
                # statistic_sign +1: the inner EDF is ahead, which dks.py calls negative.
                expected = -reference.statistic_sign * reference.statistic
                if reference.statistic == 0:
                    expected = 0.0
                assert result[labelling, f, c] == pytest.approx(expected, abs=1e-9), (
                    labelling,
                    f,
                    c,
                )
    np.testing.assert_array_equal(result[:, 1], 0.0)  # the constant feature


@pytest.mark.parametrize("bins", [None, 7, 100])
def test_several_labellings_equal_one_call_per_labelling(bins):
    values, labels, names = tied_case(1)
    permutations = calibration.permuted_labels(labels, 2, seed=1)
    together = dks.signed_ks_labellings(values, [labels, *permutations], names, bins=bins)
    for labelling, current in enumerate([labels, *permutations]):
        np.testing.assert_array_equal(
            together[labelling], dks.signed_ks(values, current, names, bins=bins)
        )


def test_labellings_must_keep_the_class_sizes():
    labels = np.array([0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="labelling 1 does not keep the class sizes"):
        dks.check_labellings([labels, np.array([0, 1, 1, 1, 1])], ["a", "b"])


def write_shards(
    folder, values: np.ndarray, shard_size: int, fingerprint: str = "test"
) -> list[str]:
    """values as an embedding folder of shards, written by the project's own dataset."""
    ids = [f"img{i:04d}" for i in range(values.shape[0])]
    columns = tuple(f"conv1_1/n{j}" for j in range(values.shape[1]))
    shards = tuple(
        ShardSpec(f"shard-{k:05d}", tuple(ids[start : start + shard_size]))
        for k, start in enumerate(range(0, len(ids), shard_size))
    )

    def compute(todo):
        for shard in todo:
            rows = [ids.index(i) for i in shard.image_ids]
            yield shard, np.ascontiguousarray(values[rows])

    ShardedEmbeddingDataset(str(folder)).save(
        EmbeddingPlan(fingerprint=fingerprint, columns=columns, shards=shards, compute=compute)
    )
    return ids


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """A small embedding on disk: 300 images in 7 shards, 41 features, 6 classes."""
    rng = np.random.default_rng(3)
    labels = rng.permutation(np.arange(300) % 6).astype(np.int64)
    values = rng.standard_normal((300, 41)).astype(np.float32)
    values[:, :10] += labels[:, None] * 0.3
    values[:, 10:20] = np.round(values[:, 10:20])  # ties
    values[:, 20] = 1.0
    folder = tmp_path_factory.mktemp("embedding") / "embedding"
    write_shards(folder, values, shard_size=45)
    label_sets, sizes = dks.check_labellings(
        [labels, *calibration.permuted_labels(labels, 2, seed=2018)], [str(c) for c in range(6)]
    )
    return folder, values, label_sets, sizes


@pytest.mark.parametrize("bins", [100, None])
@pytest.mark.parametrize("block_features", [1, 8, 41, 64])
@pytest.mark.parametrize("keep_shards_open", [True, False])
def test_blocks_read_from_shards_equal_the_in_memory_statistics(
    sharded, bins, block_features, keep_shards_open
):
    folder, values, label_sets, sizes = sharded
    reader = blocks.ShardColumnReader(folder, keep_shards_open)
    assert reader.image_ids() == [f"img{i:04d}" for i in range(300)]
    settings = blocks.StatisticSettings(bins=bins, histogram_bins=100, smoothing=1e-4)
    result = blocks.feature_block_statistics(
        reader, label_sets, sizes, settings, block_features=block_features, workers=2
    )
    names = [str(c) for c in range(6)]
    for labelling in range(3):
        expected = dks.signed_ks(values, label_sets[labelling], names, bins=bins)
        np.testing.assert_array_equal(result.dks[labelling], expected.astype(np.float32))
    kl, bhattacharyya = histogram_distances(values, label_sets[0].astype(np.int64), names)
    np.testing.assert_array_equal(result.kl, kl.astype(np.float32))
    np.testing.assert_array_equal(result.bhattacharyya, bhattacharyya.astype(np.float32))
    assert result.n_blocks == -(-41 // block_features)


def test_a_stale_or_missing_shard_is_named(tmp_path, sharded):
    _, values, _, _ = sharded
    write_shards(tmp_path / "embedding", values[:20, :3], shard_size=10)
    (tmp_path / "embedding" / "shard-00001.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00001.parquet is missing"):
        blocks.ShardColumnReader(tmp_path / "embedding").image_ids()


def test_block_size_follows_the_memory_budget():
    assert blocks.auto_block_features(250_000, 12_416, None) == 268
    assert blocks.auto_block_features(100, 50, None) == 16
    assert blocks.auto_block_features(100, 10, None) == 10
    assert blocks.auto_block_features(100, 5000, 7) == 7
    with pytest.raises(ValueError, match="block_features must be"):
        blocks.auto_block_features(100, 50, 0)


def planted_shards(folder):
    """The dks pipeline's planted inputs, with the embedding written as shards over every indexed
    image (its image rejected at extraction recorded as a reject)."""
    from pipelines.test_dks_pipeline import planted_inputs

    from cnn_feature_behavior.extraction.embedding_store import Reject

    inputs = planted_inputs()
    embedding = inputs.pop("embedding")
    ids = inputs["image_index"]["image_id"].tolist()
    columns = tuple(embedding.columns)
    values = embedding.to_numpy(np.float32)
    shards = tuple(
        ShardSpec(f"shard-{k:05d}", tuple(ids[start : start + 64]))
        for k, start in enumerate(range(0, len(ids), 64))
    )

    def compute(todo):
        for shard in todo:
            kept = [i for i in shard.image_ids if i in embedding.index]
            rejects = [
                Reject(i, f"{i}.jpg", "cannot decode") for i in shard.image_ids if i not in kept
            ]
            rows = embedding.index.get_indexer(kept)
            yield shard, np.ascontiguousarray(values[rows]), rejects

    dataset = ShardedEmbeddingDataset(str(folder))
    dataset.save(
        EmbeddingPlan(fingerprint="planted", columns=columns, shards=shards, compute=compute)
    )
    return dataset, embedding, inputs


def test_pipeline_on_shards_equals_the_pipeline_in_memory(tmp_path):
    from pipelines.test_dks_pipeline import run_dks

    dataset, embedding, inputs = planted_shards(tmp_path / "embedding")
    on_shards = run_dks({**inputs, "embedding": dataset}, {**blocks_params(), "block_features": 37})
    in_memory = run_dks({**inputs, "embedding": embedding})
    for name in (
        "dks",
        "dks_class_sizes",
        "kl_divergence",
        "bhattacharyya_distance",
        "dks_randomised",
        "randomised_pair_counts",
    ):
        pd.testing.assert_frame_equal(on_shards.load(name), in_memory.load(name))


def blocks_params():
    from pipelines.test_dks_pipeline import DKS_PARAMS

    return dict(DKS_PARAMS)


def kill_once_plugin(flag: str):
    """A Dask worker plugin: the first worker to start a block task kills itself (kill -9), once.

    Defined in a function so that it is pickled by value (workers cannot import the tests).
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    class KillOnce(WorkerPlugin):
        name = "kill-once"

        def transition(self, key, start, finish, **kwargs) -> None:
            if finish == "executing" and "feature-block" in str(key):
                try:
                    descriptor = os.open(flag, os.O_CREAT | os.O_EXCL)
                except FileExistsError:
                    return
                os.close(descriptor)
                os.kill(os.getpid(), signal.SIGKILL)

    return KillOnce()


@pytest.mark.slow
def test_dask_cluster_equals_local_even_when_a_worker_is_killed(sharded, tmp_path):

    folder, values, label_sets, sizes = sharded
    settings = blocks.StatisticSettings(bins=None, histogram_bins=100)

    def run(client=None):
        return blocks.feature_block_statistics(
            blocks.ShardColumnReader(folder),
            label_sets,
            sizes,
            settings,
            block_features=4,
            client=client,
        )

    local = run()
    with loopback_cluster(n_workers=2, timeout=60) as client:
        undisturbed = run(client)
        client.register_plugin(kill_once_plugin(str(tmp_path / "killed")))
        killed = run(client)
    assert (tmp_path / "killed").exists()  # a worker did die mid-run
    for remote in (undisturbed, killed):
        for name in ("dks", "kl", "bhattacharyya"):
            np.testing.assert_array_equal(getattr(remote, name), getattr(local, name))
        assert remote.n_blocks == local.n_blocks == 11
        assert sum(remote.workers.values()) == 11


def test_shards_are_reopened_when_their_footers_exceed_the_budget(sharded, monkeypatch, caplog):
    folder, values, label_sets, sizes = sharded
    monkeypatch.setattr(blocks, "FOOTER_BUDGET", 1000)
    reader = blocks.ShardColumnReader(folder, keep_shards_open=True)
    assert not reader.keep_shards_open and "reopening each shard" in caplog.text
    np.testing.assert_array_equal(reader.read_block(3, 5), values[:, 3:5].T)
