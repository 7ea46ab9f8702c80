"""A flipped byte inside a shard (issue 27, finding 1): named and recomputed, never read.

Shards carry Parquet page checksums, verified by every read, and a SHA-256 beside them, checked
before a shard is reused or loaded."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError
from test_embedding_dataset import IDS, _expected, _plan

from cnn_feature_behavior.extraction.embedding_store import (
    DamagedShardError,
    ShardedEmbeddingDataset,
)
from cnn_feature_behavior.statistics.blocks import ShardColumnReader


def flip_last_byte_of_column(path, column: int = 1) -> None:
    """XOR the last byte of one column chunk (its data page's values) of a Parquet file."""
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(column)
    offset = chunk.data_page_offset + chunk.total_compressed_size - 1
    content = bytearray(path.read_bytes())
    content[offset] ^= 0xFF
    path.write_bytes(bytes(content))


@pytest.fixture
def saved(tmp_path):
    dataset = ShardedEmbeddingDataset(path=str(tmp_path / "emb"))
    dataset.save(_plan(IDS))
    return dataset, tmp_path / "emb"


def test_a_flipped_byte_in_a_shards_data_is_recomputed_not_reused(saved, caplog):
    dataset, folder = saved
    flip_last_byte_of_column(folder / "shard-00001.parquet")
    computed: list[str] = []
    dataset.save(_plan(IDS, computed=computed))
    assert computed == ["shard-00001"]
    assert "shard-00001.parquet is damaged" in caplog.text
    pd.testing.assert_frame_equal(dataset.load(), _expected(IDS), check_exact=True)


def test_a_flipped_byte_is_named_by_every_reader(saved):
    dataset, folder = saved
    flip_last_byte_of_column(folder / "shard-00001.parquet")
    # Kedro's load wraps the error in a DatasetError.
    with pytest.raises(Exception, match=r"shard-00001\.parquet is damaged.*SHA-256"):
        dataset.load()
    with pytest.raises(DatasetError, match=r"shard-00001\.parquet is damaged"):
        dataset.rejects()
    with pytest.raises(DatasetError, match=r"shard-00001\.parquet is damaged"):
        dataset.content_digest()
    # The block reader verifies each data page's checksum as it reads it.
    reader = ShardColumnReader(folder)
    with pytest.raises(DamagedShardError, match=r"shard-00001\.parquet is damaged"):
        reader.read_block(0, 2)


def test_shards_carry_page_checksums_and_a_digest(saved):
    _, folder = saved
    shard = folder / "shard-00000.parquet"
    assert (folder / "shard-00000.parquet.sha256").read_text().strip()
    # A page checksum is there to verify: a flipped value byte fails a verifying read only.
    flip_last_byte_of_column(shard, column=2)
    pq.read_table(shard)  # an unverified read takes the flipped value silently
    with pytest.raises(OSError, match="CRC|checksum"):
        pq.read_table(shard, page_checksum_verification=True)


def test_a_shard_without_its_digest_is_recomputed(saved):
    dataset, folder = saved
    (folder / "shard-00002.parquet.sha256").unlink()
    computed: list[str] = []
    dataset.save(_plan(IDS, computed=computed))
    assert computed == ["shard-00002"]


def test_the_content_digest_follows_the_shards(saved):
    dataset, folder = saved
    before = dataset.content_digest()
    assert dataset.content_digest() == before
    ShardedEmbeddingDataset(path=str(folder)).save(_plan(IDS[:4]))
    assert dataset.content_digest() != before
