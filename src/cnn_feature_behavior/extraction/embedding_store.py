"""Kedro datasets of this project.

`ShardedEmbeddingDataset` stores the embedding as a folder of Parquet shards:

    <path>/plan.json              what the embedding holds: fingerprint, feature columns, shards
    <path>/shard-00000.parquet    `image_id` then one float32 column per feature, for a run of
    <path>/shard-00001.parquet    consecutive indexed images, minus the ones that failed to decode

Saving takes an `EmbeddingPlan` (the shards to produce and a way to compute any of them) and,
holding the folder's lock (folder_lock.py: one run per folder), writes only the shards not
already complete, each to a temporary file (named by process and attempt) that is flushed to
disk and then renamed into place: a killed run or worker never leaves a partial shard under a
shard's name, and a rerun continues from the finished ones. Every shard records its fingerprint
(a hash of its images' files and the extraction config; plan.json lists every shard's), so
shards of another plan are detected and discarded, never mixed in, while a shard whose images
and settings did not change is kept; and it records the images of its run that could not be used
(`Reject`: image id, path, reason) in its Parquet metadata: rows + rejects = the planned ids.
An unreadable plan.json is a stale plan (discarded with a warning); a damaged shard is named.

Integrity: shards are written with Parquet page checksums (CRC-32 of every data page), which
every read verifies, and beside each shard its SHA-256 (`shard-00000.parquet.sha256`, written
before the shard is renamed into place). A shard whose bytes differ from its digest (a flipped
bit, a partial write, a missing digest) is damaged: saving counts it as missing and recomputes
it, loading names it (`DamagedShardError`) and reads nothing from it. `content_digest` checks
every shard so and is the embedding's fingerprint for the lineage records (lineage/records.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError

from cnn_feature_behavior.extraction.folder_lock import folder_lock
from cnn_feature_behavior.lineage.digests import file_digest, remember_digest

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
INDEX_COLUMN = "image_id"
_FINGERPRINT_KEY = b"cnn_feature_behavior.plan_fingerprint"
_REJECTS_KEY = b"cnn_feature_behavior.rejects"
DIGEST_SUFFIX = ".sha256"


class DamagedShardError(OSError):
    """A shard file that Parquet cannot read (truncated, garbled), named with the way out.

    Built by `damaged_shard`; a plain message argument, so that it pickles (Dask sends it back).
    """


def damaged_shard(path: Path, error: BaseException | str) -> DamagedShardError:
    cause = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return DamagedShardError(
        f"{path} is damaged ({cause}); run the feature_extraction pipeline again, it recomputes "
        "the shard"
    )


def digest_path(shard_path: Path) -> Path:
    """Where a shard's SHA-256 is kept: beside it."""
    return shard_path.with_name(shard_path.name + DIGEST_SUFFIX)


def shard_damage(path: Path) -> str | None:
    """Why the shard file at `path` is damaged (its bytes differ from its recorded SHA-256, or it
    has none), or None when intact."""
    try:
        expected = digest_path(path).read_text().strip()
    except FileNotFoundError:
        return f"no {DIGEST_SUFFIX} digest beside it: written by an older version or cut short"
    found = file_digest(path)
    if found != expected:
        return (
            f"its bytes differ from the SHA-256 recorded when it was written: {found[:12]}... "
            f"instead of {expected[:12]}..."
        )
    return None


@dataclass(frozen=True)
class ShardSpec:
    """One shard: its name and the image ids it holds, in order."""

    name: str
    image_ids: tuple[str, ...]


@dataclass(frozen=True)
class Reject:
    """An image of a shard left out of the embedding: its id, its file and why."""

    image_id: str
    path: str
    reason: str


@dataclass(frozen=True)
class EmbeddingPlan:
    """What an embedding holds and how to compute any of its shards.

    `compute(shards)` yields, for each given shard in order, `(shard, features)` or
    `(shard, features, rejects)`: the float32 feature matrix has one row per image id of the
    shard that is not among its `rejects` (a sequence of `Reject`), in shard order, one column
    per entry of `columns`.

    `write_in_place`, when set, is used instead of `compute` to save: `write_in_place(shards,
    folder)` writes each shard into the embedding folder itself (with `write_shard`, e.g. on the
    workers of a Dask cluster) and yields each shard once it is there, in any order.
    """

    fingerprint: str
    columns: tuple[str, ...]
    shards: tuple[ShardSpec, ...]
    compute: Callable[[Sequence[ShardSpec]], Iterator[tuple[Any, ...]]] = field(repr=False)
    description: dict[str, Any] = field(default_factory=dict)
    write_in_place: Callable[[Sequence[ShardSpec], Path], Iterator[ShardSpec]] | None = field(
        default=None, repr=False
    )
    # Each shard's own fingerprint (its images' files and the settings), by shard name; a shard
    # not listed has the plan's. A changed image then invalidates its shard, not the embedding.
    shard_fingerprints: Mapping[str, str] | None = field(default=None, repr=False)

    def shard_fingerprint(self, shard: ShardSpec) -> str:
        """What `shard`'s file must record to belong to this plan: as given, else a hash of the
        plan's fingerprint and the shard's image ids."""
        given = (self.shard_fingerprints or {}).get(shard.name)
        if given is not None:
            return given
        content = json.dumps([self.fingerprint, shard.name, list(shard.image_ids)])
        return hashlib.sha256(content.encode()).hexdigest()

    def shard_records(self) -> list[dict[str, Any]]:
        """The shards as plan.json lists them."""
        return [
            {"name": s.name, "n_images": len(s.image_ids), "fingerprint": self.shard_fingerprint(s)}
            for s in self.shards
        ]


def write_shard(
    folder: Path,
    shard: ShardSpec,
    columns: Sequence[str],
    fingerprint: str,
    features: np.ndarray,
    rejects: Iterable[Reject] = (),
) -> None:
    """Write one shard atomically: a temporary file unique to this process and attempt, renamed."""
    rejects = list(rejects)
    rejected = {r.image_id for r in rejects}
    if not rejected <= set(shard.image_ids):
        raise DatasetError(
            f"{folder}: shard {shard.name} rejects images it does not hold: "
            f"{sorted(rejected - set(shard.image_ids))[:5]}"
        )
    image_ids = [i for i in shard.image_ids if i not in rejected]
    expected = (len(image_ids), len(columns))
    if features.shape != expected or features.dtype != np.float32:
        raise DatasetError(
            f"{folder}: shard {shard.name} computed as {features.dtype}{features.shape}, "
            f"expected float32{expected}"
        )
    # One contiguous block per column, all in one buffer: each column is a zero-copy view of it
    # (pa.array on each column costs several times more, a sizeable part of writing a small
    # shard of thousands of columns; the file's bytes are the same).
    rows = len(image_ids)
    values = pa.py_buffer(np.ravel(np.asfortranarray(features), order="F"))
    arrays = [pa.array(image_ids, type=pa.string())]
    arrays += [
        pa.Array.from_buffers(pa.float32(), rows, [None, values], offset=j * rows)
        for j in range(features.shape[1])
    ]
    table = pa.Table.from_arrays(arrays, names=[INDEX_COLUMN, *columns])
    metadata = {
        _FINGERPRINT_KEY: fingerprint.encode(),
        _REJECTS_KEY: json.dumps([[r.image_id, r.path, r.reason] for r in rejects]).encode(),
    }
    table = table.replace_schema_metadata(metadata)
    final = Path(folder) / f"{shard.name}.parquet"
    # A killed attempt may leave its partial file, never a file another attempt renames.
    partial = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.partial")
    with open(partial, "wb") as file:
        # Float features gain nothing from dictionaries or statistics; skipping them halves write
        # time. Page checksums: every read verifies each data page (embedding_store's doc).
        pq.write_table(
            table, file, write_statistics=False, use_dictionary=False, write_page_checksum=True
        )
        file.flush()
        os.fsync(file.fileno())
    # The digest first: a shard renamed into place always has its own (a crash in between
    # leaves the old shard with the new digest: damaged, so recomputed).
    with open(partial, "rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    _write_text_durably(digest_path(final), digest + "\n")
    durable_replace(partial, final)
    remember_digest(final, digest)


def _write_text_durably(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.partial")
    with open(partial, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    durable_replace(partial, path)


def durable_replace(partial: Path, final: Path) -> None:
    """Rename a file whose data is already on disk into place, and the rename onto disk too.

    Without the fsyncs a power loss can leave a renamed file whose data never reached the disk
    (a garbled plan.json or shard under its final name).
    """
    os.replace(partial, final)
    folder = os.open(Path(final).parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


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
        self._require_usable(plan)
        wanted = None if columns is None else [INDEX_COLUMN, *columns]
        tables = [read_shard(self._shard_path(shard["name"]), wanted) for shard in plan["shards"]]
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
        with folder_lock(self._path):
            self._save_locked(data)

    def _save_locked(self, data: EmbeddingPlan) -> None:
        self._discard_partial_files()
        records = data.shard_records()
        self._discard_stale_plan(data.fingerprint, records)
        self._write_json_atomically(
            self._path / PLAN_FILE,
            {
                "fingerprint": data.fingerprint,
                "description": data.description,
                "columns": list(data.columns),
                "shards": records,
            },
        )
        todo = [
            s
            for s, record in zip(data.shards, records, strict=True)
            if not self._shard_matches(record, data.fingerprint, s.image_ids)
        ]
        logger.info(
            "Embedding %s: %d of %d shards already complete, %d to compute",
            self._path,
            len(data.shards) - len(todo),
            len(data.shards),
            len(todo),
        )
        if data.write_in_place is None:
            for shard, features, *rejects in data.compute(todo):
                fingerprint = data.shard_fingerprint(shard)
                write_shard(self._path, shard, data.columns, fingerprint, features, *rejects)
            return
        for shard in data.write_in_place(todo, self._path):
            record = {"name": shard.name, "n_images": len(shard.image_ids)}
            record["fingerprint"] = data.shard_fingerprint(shard)
            if not self._shard_matches(record, data.fingerprint, shard.image_ids):
                raise DatasetError(
                    f"{self._shard_path(shard.name)} was reported written but is missing or "
                    "does not match the plan (is the embedding folder on storage every worker shares?)"
                )
        # What a worker killed while writing left: never under a shard's name, removed now.
        self._discard_partial_files()

    def rejects(self) -> list[Reject]:
        """The images the shards left out (undecodable), in shard order, from metadata alone."""
        plan = self._read_plan()
        self._require_usable(plan)
        found = []
        for shard in plan["shards"]:
            found += _rejects_of(pq.read_schema(self._shard_path(shard["name"])).metadata or {})
        return found

    def content_digest(self) -> str:
        """A digest of plan.json and of every shard's bytes, each shard checked first: the
        embedding's fingerprint in lineage records."""
        plan_bytes = (self._path / PLAN_FILE).read_bytes()
        plan = self._read_plan()
        self._require_usable(plan)
        shards = [(s["name"], file_digest(self._shard_path(s["name"]))) for s in plan["shards"]]
        summary = hashlib.sha256(plan_bytes + json.dumps(shards).encode()).hexdigest()
        return f"sha256-embedding:{summary}"

    def lineage_details(self) -> dict[str, Any]:
        """What a lineage record adds about the embedding: its plan's fingerprint and description
        (source model, full weights digest, settings, library versions)."""
        plan = self._read_plan()
        return {
            "plan_fingerprint": plan["fingerprint"],
            "description": plan.get("description", {}),
            "n_shards": len(plan["shards"]),
        }

    def _exists(self) -> bool:
        try:
            plan = self._read_plan()
        except DatasetError:
            return False
        return all(self._shard_problem(s, plan["fingerprint"]) is None for s in plan["shards"])

    def _require_usable(self, plan: dict[str, Any]) -> None:
        """Error unless every shard of the plan is there, of the plan and intact: nothing is
        read from an embedding with a missing, stale or damaged shard (each damaged one named)."""
        problems = []
        for shard in plan["shards"]:
            problem = self._shard_problem(shard, plan["fingerprint"])
            if problem is None:
                continue
            path = self._shard_path(shard["name"])
            if problem.startswith("damaged"):
                logger.warning("Embedding shard %s is %s", path, problem)
                problem = f"{path} is damaged ({problem.split(': ', 1)[1]})"
            problems.append(f"{shard['name']}: {problem}")
        if problems:
            raise DatasetError(
                f"embedding at {self._path} is incomplete: {len(problems)} of "
                f"{len(plan['shards'])} shards missing, stale or damaged (first: {problems[0]}); "
                "run the feature_extraction pipeline again, it computes them again"
            )

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "load_args": self._load_args}

    def _shard_matches(
        self, shard: dict[str, Any], fingerprint: str, image_ids: tuple[str, ...] | None = None
    ) -> bool:
        """Whether the shard's file belongs to the plan and is intact (`_shard_problem`); a
        damaged one is said in a warning: it counts as missing."""
        problem = self._shard_problem(shard, fingerprint, image_ids)
        if problem is not None and problem.startswith("damaged"):
            logger.warning(
                "Embedding shard %s is %s; it counts as missing and is computed again",
                self._shard_path(shard["name"]),
                problem,
            )
        return problem is None

    def _shard_problem(
        self, shard: dict[str, Any], fingerprint: str, image_ids: tuple[str, ...] | None = None
    ) -> str | None:
        """None when the shard's file belongs to the plan, else why not: `missing`, `stale`
        (its record's fingerprint, the plan's `fingerprint` for plans written before shards had
        their own, its rows or its rejects differ) or `damaged: <why>` (its bytes differ from its
        digest, or Parquet cannot read it)."""
        fingerprint = shard.get("fingerprint", fingerprint)
        path = self._shard_path(shard["name"])
        if not path.is_file():
            return "missing"
        try:
            damage = shard_damage(path)
            if damage is not None:
                return f"damaged: {damage}"
            metadata = pq.read_schema(path).metadata or {}
            if metadata.get(_FINGERPRINT_KEY) != fingerprint.encode():
                return "stale"
            rejected = [r.image_id for r in _rejects_of(metadata)]
            if image_ids is None:
                rows = pq.read_metadata(path).num_rows
                return None if rows + len(rejected) == shard["n_images"] else "stale"
            stored = read_shard(path, [INDEX_COLUMN]).column(INDEX_COLUMN).to_pylist()
        except (OSError, pa.ArrowException, ValueError) as error:
            # E.g. a machine crash before its data reached the disk.
            return f"damaged: {type(error).__name__}: {error}"
        left_out = set(rejected)
        kept = [i for i in image_ids if i not in left_out]
        return None if left_out <= set(image_ids) and stored == kept else "stale"

    def _discard_stale_plan(self, fingerprint: str, shards: list[dict[str, Any]]) -> None:
        """Remove plan.json and the shard files the new plan does not list as they were.

        A shard listed alike (name, image count, fingerprint) in the old and the new plan is kept;
        any other shard file goes, e.g. of another shard layout under the same settings: loading
        checks only fingerprints and row counts, so such shards must not outlive their plan.
        """
        plan_path = self._path / PLAN_FILE
        shard_files = sorted(self._path.glob("shard-*.parquet"))
        old_plan = self._old_plan()
        if old_plan is None and not shard_files:
            return
        if old_plan is not None and (old_plan["fingerprint"], old_plan["shards"]) == (
            fingerprint,
            shards,
        ):
            return
        kept = {r["name"] for r in (old_plan or {}).get("shards") or [] if r in shards}
        stale = [path for path in shard_files if path.stem not in kept]
        if stale:
            logger.warning(
                "Embedding %s holds %d shard(s) of another plan (other images, image files or "
                "extraction config); discarding them (%d kept)",
                self._path,
                len(stale),
                len(shard_files) - len(stale),
            )
        for path in stale:
            path.unlink()
        # The digests of shards gone, and any left by a crash between a digest and its shard.
        for path in self._path.glob(f"shard-*.parquet{DIGEST_SUFFIX}"):
            if not path.with_suffix("").is_file():
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
            return read_plan_file(plan_path)
        except ValueError as error:
            raise DatasetError(
                f"{error}; run the feature_extraction pipeline again, it discards it"
            ) from error

    def _old_plan(self) -> dict[str, Any] | None:
        """The folder's plan before this save; None when absent or unreadable (a stale plan)."""
        plan_path = self._path / PLAN_FILE
        if not plan_path.is_file():
            return None
        try:
            return read_plan_file(plan_path)
        except ValueError as error:
            logger.warning("%s; discarding it as a stale plan", error)
            return {"fingerprint": None, "shards": None}

    def _shard_path(self, name: str) -> Path:
        return self._path / f"{name}.parquet"

    def _write_json_atomically(self, path: Path, content: dict[str, Any]) -> None:
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with open(partial, "w") as file:
            file.write(json.dumps(content, indent=1))
            file.flush()
            os.fsync(file.fileno())
        durable_replace(partial, path)


def read_shard(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """`pq.read_table` with every page's checksum verified, a damaged file named
    (DamagedShardError)."""
    try:
        return pq.read_table(path, columns=columns, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise damaged_shard(path, error) from error


def read_plan_file(plan_path: Path) -> dict[str, Any]:
    """An embedding's plan.json; ValueError naming the file when unreadable or malformed."""
    try:
        plan = json.loads(plan_path.read_bytes())
        shards = plan["shards"]
        if not (
            isinstance(plan["fingerprint"], str)
            and isinstance(plan["columns"], list)
            and all(isinstance(s["name"], str) and isinstance(s["n_images"], int) for s in shards)
            and all(isinstance(s.get("fingerprint", ""), str) for s in shards)
        ):
            raise TypeError("fields of the wrong type")
    except (ValueError, KeyError, TypeError) as error:  # JSON and UTF-8 errors are ValueErrors
        raise ValueError(
            f"{plan_path} is unreadable ({type(error).__name__}: {error}), e.g. garbled by a crash"
        ) from error
    return plan


def _rejects_of(metadata: dict[bytes, bytes]) -> list[Reject]:
    # Shards written before rejects were recorded per shard hold none.
    return [Reject(*entry) for entry in json.loads(metadata.get(_REJECTS_KEY, b"[]"))]
