"""Kedro datasets of this project.

`ShardedEmbeddingDataset` stores the embedding as a folder of Parquet shards:

    <path>/plan.json              what the embedding holds: fingerprint, feature columns, shards
    <path>/shard-00000.parquet    `image_id` then one float32 column per feature, for a run of
    <path>/shard-00001.parquet    consecutive images (image-index order minus extraction rejects)

Saving takes an `EmbeddingPlan` (the shards to produce and a way to compute any of them) and
writes only the shards not already complete, each to a temporary file that is then renamed into
place: a killed run never leaves a partial shard under a shard's name, and a rerun continues from
the finished ones. Every shard records the plan's fingerprint (a hash of the image ids and the
extraction config), so shards of another plan are detected and discarded, never mixed in.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
INDEX_COLUMN = "image_id"
_FINGERPRINT_KEY = b"cnn_feature_behavior.plan_fingerprint"


@dataclass(frozen=True)
class ShardSpec:
    """One shard: its name and the image ids it holds, in order."""

    name: str
    image_ids: tuple[str, ...]


@dataclass(frozen=True)
class EmbeddingPlan:
    """What an embedding holds and how to compute any of its shards.

    `compute(shards)` yields, for each given shard in order, the shard and its float32 feature
    matrix (one row per image id, one column per entry of `columns`).
    """

    fingerprint: str
    columns: tuple[str, ...]
    shards: tuple[ShardSpec, ...]
    compute: Callable[[Sequence[ShardSpec]], Iterator[tuple[ShardSpec, np.ndarray]]] = field(
        repr=False
    )
    description: dict[str, Any] = field(default_factory=dict)


class ShardedEmbeddingDataset(AbstractDataset[EmbeddingPlan, pd.DataFrame]):
    """A resumable embedding in Parquet shards; loads as a DataFrame indexed by `image_id`.

    `load_args: {columns: [...]}` or `load_columns(columns)` read only some feature columns.
    """

    def __init__(self, path: str, load_args: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self._load_args = dict(load_args or {})
        unknown = set(self._load_args) - {"columns"}
        if unknown:
            raise ValueError(
                f"ShardedEmbeddingDataset({path}): unknown load_args {sorted(unknown)}"
            )

    def load(self) -> pd.DataFrame:
        return self.load_columns(self._load_args.get("columns"))

    def load_columns(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The embedding, or only the given feature columns of it (read without the others)."""
        plan = self._read_plan()
        if columns is not None:
            known = set(plan["columns"])
            unknown = [c for c in columns if c not in known]
            if unknown:
                raise DatasetError(
                    f"{self._path}: no feature columns {unknown[:5]} (of {len(unknown)} asked)"
                )
        missing = [
            shard["name"]
            for shard in plan["shards"]
            if not self._shard_matches(shard, plan["fingerprint"])
        ]
        if missing:
            raise DatasetError(
                f"embedding at {self._path} is incomplete: {len(missing)} of {len(plan['shards'])} shards "
                f"missing or stale (first: {missing[0]}); run the feature_extraction pipeline again, it resumes"
            )
        wanted = None if columns is None else [INDEX_COLUMN, *columns]
        tables = [
            pq.read_table(self._shard_path(shard["name"]), columns=wanted)
            for shard in plan["shards"]
        ]
        if not tables:
            empty = pd.DataFrame(
                columns=list(plan["columns"] if columns is None else columns), dtype=np.float32
            )
            return empty.rename_axis(INDEX_COLUMN)
        frame = pa.concat_tables(tables).to_pandas()
        return frame.set_index(INDEX_COLUMN)

    def feature_columns(self) -> list[str]:
        """The embedding's feature column names, in order, without reading any shard."""
        return list(self._read_plan()["columns"])

    @property
    def path(self) -> Path:
        """The embedding folder (statistics/blocks.py reads feature blocks from its shards)."""
        return self._path

    def save(self, data: EmbeddingPlan) -> None:
        if not isinstance(data, EmbeddingPlan):
            raise DatasetError(
                f"{self._path}: expected an EmbeddingPlan to save, got {type(data).__name__}"
            )
        self._path.mkdir(parents=True, exist_ok=True)
        self._discard_partial_files()
        self._discard_stale_plan(data.fingerprint, [_shard_record(s) for s in data.shards])
        self._write_json_atomically(
            self._path / PLAN_FILE,
            {
                "fingerprint": data.fingerprint,
                "description": data.description,
                "columns": list(data.columns),
                "shards": [{"name": s.name, "n_images": len(s.image_ids)} for s in data.shards],
            },
        )
        todo = [
            s
            for s in data.shards
            if not self._shard_matches(_shard_record(s), data.fingerprint, s.image_ids)
        ]
        logger.info(
            "Embedding %s: %d of %d shards already complete, %d to compute",
            self._path,
            len(data.shards) - len(todo),
            len(data.shards),
            len(todo),
        )
        for shard, features in data.compute(todo):
            self._write_shard(shard, features, data)

    def _exists(self) -> bool:
        try:
            plan = self._read_plan()
        except DatasetError:
            return False
        return all(self._shard_matches(shard, plan["fingerprint"]) for shard in plan["shards"])

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "load_args": self._load_args}

    def _write_shard(self, shard: ShardSpec, features: np.ndarray, plan: EmbeddingPlan) -> None:
        expected = (len(shard.image_ids), len(plan.columns))
        if features.shape != expected or features.dtype != np.float32:
            raise DatasetError(
                f"{self._path}: shard {shard.name} computed as {features.dtype}{features.shape}, "
                f"expected float32{expected}"
            )
        arrays = [pa.array(shard.image_ids, type=pa.string())]
        arrays += [pa.array(features[:, j]) for j in range(features.shape[1])]
        table = pa.Table.from_arrays(arrays, names=[INDEX_COLUMN, *plan.columns])
        table = table.replace_schema_metadata({_FINGERPRINT_KEY: plan.fingerprint.encode()})
        final = self._shard_path(shard.name)
        partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
        # Float features gain nothing from dictionaries or statistics; skipping them halves write time.
        pq.write_table(table, partial, write_statistics=False, use_dictionary=False)
        os.replace(partial, final)

    def _shard_matches(
        self, shard: dict[str, Any], fingerprint: str, image_ids: tuple[str, ...] | None = None
    ) -> bool:
        path = self._shard_path(shard["name"])
        if not path.is_file():
            return False
        try:
            metadata = pq.read_schema(path).metadata or {}
            if metadata.get(_FINGERPRINT_KEY) != fingerprint.encode():
                return False
            if image_ids is None:
                return pq.read_metadata(path).num_rows == shard["n_images"]
            stored = pq.read_table(path, columns=[INDEX_COLUMN]).column(INDEX_COLUMN).to_pylist()
        except (OSError, pa.ArrowException) as error:
            # A damaged shard (e.g. a machine crash before its data reached the disk) is not complete.
            logger.warning(
                "Embedding shard %s is unreadable (%s); it counts as missing", path, error
            )
            return False
        return tuple(stored) == image_ids

    def _discard_stale_plan(self, fingerprint: str, shards: list[dict[str, Any]]) -> None:
        plan_path = self._path / PLAN_FILE
        shard_files = sorted(self._path.glob("shard-*.parquet"))
        # Another shard layout (e.g. another shard_size) under the same fingerprint is stale too:
        # loading checks only fingerprints and row counts, so its shards must not outlive it.
        old_plan = self._read_plan() if plan_path.is_file() else None
        stale_plan = old_plan is not None and (
            old_plan["fingerprint"] != fingerprint or old_plan["shards"] != shards
        )
        if not stale_plan and (plan_path.is_file() or not shard_files):
            return
        logger.warning(
            "Embedding %s holds %d shards of another plan (other images or extraction config); discarding them",
            self._path,
            len(shard_files),
        )
        for path in shard_files:
            path.unlink()
        plan_path.unlink(missing_ok=True)

    def _discard_partial_files(self) -> None:
        for path in self._path.glob(".*.partial"):
            path.unlink()

    def _read_plan(self) -> dict[str, Any]:
        plan_path = self._path / PLAN_FILE
        if not plan_path.is_file():
            raise DatasetError(
                f"no embedding at {self._path} ({PLAN_FILE} absent); run the feature_extraction pipeline"
            )
        try:
            return json.loads(plan_path.read_text())
        except json.JSONDecodeError as error:
            raise DatasetError(f"{plan_path} is not valid JSON: {error}") from error

    def _shard_path(self, name: str) -> Path:
        return self._path / f"{name}.parquet"

    def _write_json_atomically(self, path: Path, content: dict[str, Any]) -> None:
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(content, indent=1))
        os.replace(partial, path)


def _shard_record(shard: ShardSpec) -> dict[str, Any]:
    return {"name": shard.name, "n_images": len(shard.image_ids)}
