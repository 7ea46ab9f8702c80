"""Every per-(feature, class) statistic of a run from one read of each block of feature columns.

DKS under the real labels, DKS under each randomised labelling (calibration) and, optionally,
KL / Bhattacharyya are computed together per block of feature columns: a block is read once
(from the embedding's Parquet shards by column projection, or sliced from an in-memory matrix)
and every statistic is computed from it before the next is read. Blocks run on a thread pool of
this process (`executor: local`) or as tasks on a Dask cluster (`executor: dask`): a task gets
the embedding folder and its column range and reads the block itself, so workers need only the
path (shared storage) and no process ever holds the whole (images x features) matrix. Peak memory
per process is about (blocks in flight) x block_features x images x 4 bytes, plus the opened
shards' footers and the (features x classes) results.

Reading cost: a shard's Parquet footer lists every one of its ~12,417 columns (about 2 MB, ~0.1
to 0.3 s to parse), and pyarrow spends a fixed ~30-80 us per column chunk it decodes. So each
reader opens every shard once and keeps it open (`keep_shards_open`), and the cost of a full pass
grows with shards x features: large embeddings read far faster from large shards (see
benchmarks/bench_out_of_core.py for measured figures).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cnn_feature_behavior.extraction.embedding_store import (
    INDEX_COLUMN,
    PLAN_FILE,
    damaged_shard,
    read_plan_file,
)
from cnn_feature_behavior.statistics.dks import block_dks, check_bins, feature_range
from cnn_feature_behavior.statistics.histogram_distances import (
    block_histogram_distances,
    check_histogram_settings,
)

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger(__name__)

# The fingerprint every shard records in its Parquet metadata (embedding_store.py).
FINGERPRINT_KEY = b"cnn_feature_behavior.plan_fingerprint"
# Automatic block size: this many bytes of float32 block per block in flight.
BLOCK_BYTES = 256 * 2**20
MIN_BLOCK_FEATURES, MAX_BLOCK_FEATURES, MIN_BLOCKS = 16, 4096, 8
# A parsed footer takes ~1.8 kB per column chunk in memory (22 MB for 12,417 columns, measured);
# shards stay open only while all their footers fit this budget.
FOOTER_BYTES_PER_COLUMN = 1800
FOOTER_BUDGET = 2**30


@dataclass(frozen=True)
class StatisticSettings:
    """What to compute per block: DKS bins (None: exact) and the histogram distances' settings
    (histogram_bins None: no KL / Bhattacharyya)."""

    bins: int | None
    histogram_bins: int | None = None
    smoothing: float = 1e-4

    def __post_init__(self) -> None:
        check_bins(self.bins)
        if self.histogram_bins is not None:
            check_histogram_settings(self.histogram_bins, self.smoothing)


@dataclass
class BlockStatistics:
    """Results of a run: dks[l] (features, classes) float32 for labelling l (0: real labels),
    kl / bhattacharyya (features, classes) float32 or None, and where the time went."""

    dks: np.ndarray
    kl: np.ndarray | None
    bhattacharyya: np.ndarray | None
    read_seconds: float = 0.0
    compute_seconds: float = 0.0
    n_blocks: int = 0
    block_features: int = 0
    workers: dict[str, Any] = field(default_factory=dict)


class ShardColumnReader:
    """Reads blocks of feature columns from an embedding folder's shards, as (features, images).

    Rows are the shards' rows in plan order (`image_ids`). Every shard is checked against its
    fingerprint in the plan when first opened, and against its file's identity (size,
    modification time, inode) taken when the reader was made (`identities`, or as the driver saw
    them: `expected_identities`), so that a reader never reads an embedding rewritten under it.
    With keep_shards_open, each opened shard (its parsed footer) is kept for later blocks, as
    long as all footers fit FOOTER_BUDGET.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        keep_shards_open: bool = True,
        expected_identities: tuple[tuple[int, ...] | None, ...] | None = None,
    ) -> None:
        self.path = Path(path)
        plan = _read_plan(self.path)
        self.columns: list[str] = list(plan["columns"])
        self.fingerprint = str(plan["fingerprint"])
        self._shards = [shard["name"] for shard in plan["shards"]]
        # Plans written before shards had their own fingerprint list only the plan's.
        self._shard_fingerprints = {
            shard["name"]: shard.get("fingerprint", self.fingerprint).encode()
            for shard in plan["shards"]
        }
        self.identities = tuple(self._identity(name) for name in self._shards)
        if expected_identities is not None and expected_identities != self.identities:
            raise RuntimeError(
                f"embedding at {self.path} changed since this run started (its shards differ "
                "from what the driver saw); run the dks pipeline again once extraction is done"
            )
        self.keep_shards_open = keep_shards_open and self._footers_fit()
        self._files: dict[str, pq.ParquetFile] = {}
        self._lock = threading.Lock()
        self._shard_locks = [threading.Lock() for _ in self._shards]
        self._ids_lock = threading.Lock()
        self._offsets: np.ndarray | None = None
        self._image_ids: list[str] | None = None

    def _identity(self, name: str) -> tuple[int, ...] | None:
        try:
            stat = (self.path / f"{name}.parquet").stat()
        except FileNotFoundError:
            return None  # named when the shard is opened
        return stat.st_size, stat.st_mtime_ns, stat.st_ino

    def _footers_fit(self) -> bool:
        footers = len(self._shards) * (len(self.columns) + 1) * FOOTER_BYTES_PER_COLUMN
        if footers <= FOOTER_BUDGET:
            return True
        logger.warning(
            "%s: %d shards x %d columns would keep ~%.1f GiB of parsed Parquet footers open; "
            "reopening each shard for each block instead (slower: larger shards, i.e. "
            "feature_extraction shard_size, read faster)",
            self.path,
            len(self._shards),
            len(self.columns),
            footers / 2**30,
        )
        return False

    def _open(self, name: str) -> pq.ParquetFile:
        with self._lock:
            opened = self._files.get(name)
        if opened is not None:
            return opened
        path = self.path / f"{name}.parquet"
        if not path.is_file():
            raise FileNotFoundError(
                f"embedding at {self.path} is incomplete: shard {path.name} is missing; "
                "run the feature_extraction pipeline again, it resumes"
            )
        try:
            # Every data page's CRC is checked as it is read (shards are written with them).
            opened = pq.ParquetFile(path, page_checksum_verification=True)
        except (pa.ArrowException, OSError) as error:
            raise damaged_shard(path, error) from error
        if self._identity(name) != self.identities[self._shards.index(name)]:
            raise RuntimeError(
                f"{path} was rewritten while the statistics read the embedding; run the dks "
                "pipeline again once extraction is done"
            )
        metadata = opened.schema_arrow.metadata or {}
        if metadata.get(FINGERPRINT_KEY) != self._shard_fingerprints[name]:
            raise ValueError(
                f"{path} belongs to another extraction plan (fingerprint differs from {PLAN_FILE}); "
                "run the feature_extraction pipeline again"
            )
        if self.keep_shards_open:
            with self._lock:
                self._files[name] = opened
        return opened

    def _read(self, name: str, columns: list[str]) -> pa.Table:
        opened = self._open(name)
        try:
            return opened.read(columns=columns, use_threads=False)
        except (pa.ArrowException, OSError) as error:
            raise damaged_shard(self.path / f"{name}.parquet", error) from error

    def image_ids(self) -> list[str]:
        """The image id of every row, in row order (read from the shards' image_id columns)."""
        with self._ids_lock:
            if self._image_ids is None:
                ids, sizes = [], []
                for shard, name in enumerate(self._shards):
                    with self._shard_locks[shard]:
                        table = self._read(name, [INDEX_COLUMN])
                    ids += table.column(INDEX_COLUMN).to_pylist()
                    sizes.append(table.num_rows)
                self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
                self._image_ids = ids
        return self._image_ids

    def read_block(self, start: int, stop: int) -> np.ndarray:
        """Feature columns start..stop-1 as a contiguous (features, images) float32 array."""
        self.image_ids()
        names = self.columns[start:stop]
        block_t = np.empty((len(names), int(self._offsets[-1])), np.float32)
        n_shards = len(self._shards)
        # Blocks read in parallel start at different shards, so they seldom wait for one another.
        first_shard = (start // max(stop - start, 1)) % max(n_shards, 1)
        for k in range(n_shards):
            shard = (first_shard + k) % n_shards
            first, last = self._offsets[shard], self._offsets[shard + 1]
            # An open ParquetFile is not safe to read from two threads at once.
            with self._shard_locks[shard]:
                table = self._read(self._shards[shard], names)
            for j, column in enumerate(table.columns):
                block_t[j, first:last] = column.to_numpy()
            del table
        return block_t


def _read_plan(path: Path) -> dict[str, Any]:
    plan_path = path / PLAN_FILE
    if not plan_path.is_file():
        raise FileNotFoundError(
            f"no embedding at {path} ({PLAN_FILE} absent); run the feature_extraction pipeline"
        )
    try:
        return read_plan_file(plan_path)
    except ValueError as error:
        raise ValueError(
            f"{error}; run the feature_extraction pipeline again, it discards it"
        ) from error


class MatrixColumnReader:
    """The same interface over an in-memory (images, features) matrix."""

    def __init__(self, values: np.ndarray, columns: Sequence[str]) -> None:
        if values.ndim != 2 or values.shape[1] != len(columns):
            raise ValueError(f"matrix {values.shape} does not hold {len(columns)} feature columns")
        self.values = values
        self.columns = list(columns)
        self.fingerprint = None  # nothing on disk to change under the reader

    def read_block(self, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(self.values[:, start:stop].T, dtype=np.float32)


def auto_block_features(n_images: int, n_features: int, block_features: int | None) -> int:
    """block_features as given, else as many as fit BLOCK_BYTES, in at least 8 blocks where the
    features allow (within 16..4096)."""
    if block_features is not None:
        if isinstance(block_features, bool) or int(block_features) != block_features:
            raise ValueError(
                f"block_features must be a positive integer or null, got {block_features!r}"
            )
        if block_features < 1:
            raise ValueError(f"block_features must be >= 1, got {block_features}")
        return int(block_features)
    fitting = BLOCK_BYTES // max(4 * n_images, 1)
    # At least MIN_BLOCKS blocks where features allow, so that every thread or worker has work.
    fitting = min(fitting, -(-n_features // MIN_BLOCKS))
    return int(min(max(fitting, MIN_BLOCK_FEATURES), MAX_BLOCK_FEATURES, max(n_features, 1)))


def compute_block(
    reader: ShardColumnReader | MatrixColumnReader,
    start: int,
    stop: int,
    label_sets: np.ndarray,
    sizes: np.ndarray,
    settings: StatisticSettings,
) -> dict[str, Any]:
    """Every statistic of feature columns start..stop-1, from one read of the block."""
    began = time.perf_counter()
    block_t = reader.read_block(start, stop)
    read = time.perf_counter() - began
    lo, hi = feature_range(block_t, start, reader.columns)
    result = {
        "start": start,
        "dks": block_dks(block_t, lo, hi, label_sets, sizes, settings.bins).astype(np.float32),
        "kl": None,
        "bhattacharyya": None,
        "constant": int(np.count_nonzero(lo == hi)),
    }
    if settings.histogram_bins is not None:
        kl, bhattacharyya = block_histogram_distances(
            block_t, lo, hi, label_sets[0], sizes, settings.histogram_bins, settings.smoothing
        )
        result["kl"], result["bhattacharyya"] = (
            kl.astype(np.float32),
            bhattacharyya.astype(np.float32),
        )
    result["read_seconds"] = read
    result["compute_seconds"] = time.perf_counter() - began - read
    result["pid"] = os.getpid()
    result["fingerprint"] = reader.fingerprint
    return result


# One reader per embedding folder per worker process, so that its shards are opened once; keyed
# by the plan's fingerprint and its shards' identities too, so that a long-lived worker never
# reads an embedding rewritten at the same path through its old open files.
_WORKER_READERS: dict[tuple[Any, ...], ShardColumnReader] = {}
_WORKER_LOCK = threading.Lock()


@dataclass(frozen=True)
class ShardSource:
    """What a Dask task needs to read blocks of an embedding: its folder, as the driver saw it."""

    path: str
    keep_shards_open: bool
    fingerprint: str
    identities: tuple[tuple[int, ...] | None, ...]

    @classmethod
    def of(cls, reader: ShardColumnReader) -> ShardSource:
        return cls(str(reader.path), reader.keep_shards_open, reader.fingerprint, reader.identities)


def worker_reader(source: ShardSource) -> ShardColumnReader:
    """This process's reader of `source`, made on first use; readers of older plans are dropped."""
    key = (source.path, source.keep_shards_open, source.fingerprint, source.identities)
    with _WORKER_LOCK:
        reader = _WORKER_READERS.get(key)
        if reader is None:
            for old in [k for k in _WORKER_READERS if k[0] == source.path]:
                del _WORKER_READERS[old]
            reader = ShardColumnReader(source.path, source.keep_shards_open, source.identities)
            if reader.fingerprint != source.fingerprint:
                raise RuntimeError(
                    f"embedding at {source.path} changed since this run started (plan "
                    f"{reader.fingerprint[:12]}, run planned on {source.fingerprint[:12]})"
                )
            _WORKER_READERS[key] = reader
    return reader


def _worker_block(
    source: ShardSource,
    start: int,
    stop: int,
    label_sets: np.ndarray,
    sizes: np.ndarray,
    settings: StatisticSettings,
) -> dict[str, Any]:
    """A Dask task: read the block from the shards at `path` in this worker and compute it."""
    return compute_block(worker_reader(source), start, stop, label_sets, sizes, settings)


def feature_block_statistics(
    reader: ShardColumnReader | MatrixColumnReader,
    label_sets: np.ndarray,
    sizes: np.ndarray,
    settings: StatisticSettings,
    block_features: int | None = None,
    workers: int | None = None,
    client: Client | None = None,
) -> BlockStatistics:
    """Every statistic of every feature, block by block, locally (client None) or on Dask.

    label_sets: (labellings, images) int32 rows in the reader's row order, all with the class
    sizes `sizes` (as `dks.check_labellings` returns them). On Dask the reader must read shards.
    Every block is checked to come from the reader's plan (its fingerprint).
    """
    n_features = len(reader.columns)
    block_features = auto_block_features(label_sets.shape[1], n_features, block_features)
    starts = range(0, n_features, block_features)
    bounds = [(start, min(start + block_features, n_features)) for start in starts]
    result = _empty_result(label_sets.shape[0], n_features, sizes.size, settings)
    result.n_blocks, result.block_features = len(bounds), block_features
    if client is None:
        computed = _local_blocks(reader, bounds, label_sets, sizes, settings, workers)
    else:
        computed = _dask_blocks(client, reader, bounds, label_sets, sizes, settings)
    constant = 0
    for block in computed:
        if block["fingerprint"] != reader.fingerprint:
            raise RuntimeError(
                f"a block of features {block['start']}.. was computed from another plan of the "
                f"embedding at {getattr(reader, 'path', '(memory)')} ({block['fingerprint']}, "
                f"not {reader.fingerprint}); run feature_extraction, then dks, again"
            )
        _collect(result, block)
        constant += block["constant"]
    if constant:
        logger.info(
            "%d of %d features are constant over the images (all classes alike)",
            constant,
            n_features,
        )
    return result


def _empty_result(
    n_labellings: int, n_features: int, n_classes: int, settings: StatisticSettings
) -> BlockStatistics:
    with_histograms = settings.histogram_bins is not None
    return BlockStatistics(
        dks=np.empty((n_labellings, n_features, n_classes), np.float32),
        kl=np.empty((n_features, n_classes), np.float32) if with_histograms else None,
        bhattacharyya=np.empty((n_features, n_classes), np.float32) if with_histograms else None,
    )


def _collect(result: BlockStatistics, block: dict[str, Any]) -> None:
    rows = slice(block["start"], block["start"] + block["dks"].shape[1])
    result.dks[:, rows] = block["dks"]
    if result.kl is not None:
        result.kl[rows] = block["kl"]
        result.bhattacharyya[rows] = block["bhattacharyya"]
    result.read_seconds += block["read_seconds"]
    result.compute_seconds += block["compute_seconds"]
    pid = str(block["pid"])
    result.workers[pid] = result.workers.get(pid, 0) + 1


def _local_blocks(
    reader: ShardColumnReader | MatrixColumnReader,
    bounds: list[tuple[int, int]],
    label_sets: np.ndarray,
    sizes: np.ndarray,
    settings: StatisticSettings,
    workers: int | None,
) -> Iterator[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        yield from pool.map(
            lambda bound: compute_block(reader, *bound, label_sets, sizes, settings), bounds
        )


def _dask_blocks(
    client: Client,
    reader: ShardColumnReader | MatrixColumnReader,
    bounds: list[tuple[int, int]],
    label_sets: np.ndarray,
    sizes: np.ndarray,
    settings: StatisticSettings,
) -> Iterator[dict[str, Any]]:
    if not isinstance(reader, ShardColumnReader):
        raise ValueError(
            "executor: dask reads feature blocks from the embedding shards; got an in-memory "
            "embedding (use executor: local)"
        )
    from distributed import as_completed

    source = ShardSource.of(reader)
    # Keys unique across runs and clients: a scheduler merges tasks of equal keys (and scattered
    # data of equal content, which one run's release would then take from the next).
    run = uuid.uuid4().hex
    shared_labels = client.scatter(label_sets, broadcast=True, hash=False)
    futures = [
        client.submit(
            _worker_block,
            source,
            start,
            stop,
            shared_labels,
            sizes,
            settings,
            key=f"feature-block-{start}-{stop}-{run}",
        )
        for start, stop in bounds
    ]
    for future in as_completed(futures):
        yield future.result()
        future.release()
