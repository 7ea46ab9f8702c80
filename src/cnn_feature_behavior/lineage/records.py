"""Lineage records: what each output was computed from, written beside it, checked before use.

Every output a run saves (a file or a folder) gets a record beside it,
`<folder>/.<name>.lineage.json`, holding:
- `content`: a digest of the output as written (`digests.content_digest`: SHA-256 of the file, of
  the named files of a folder, or the dataset's own `content_digest()`: the embedding's covers
  plan.json and every shard), which is also its fingerprint for the outputs computed from it;
- `inputs`: each saved input it was computed from, with that input's path and fingerprint when it
  was read (inputs passed in memory between nodes are followed to the saved ones);
- `parameters`: the values of the parameters its node, and the in-memory nodes before it, took;
- `settings`: the study settings (`GUARDED_PARAMETERS`) it depends on, through its inputs too;
- `versions`: the code (package version and git commit) and the libraries (TensorFlow, Keras,
  NumPy, pandas, pyarrow, ...); `details`: what the dataset adds (the embedding: its plan's
  fingerprint and description, with the full weights digest);
- `run`: the env, the pipelines and the runtime parameters of the run that wrote it.

An output is *usable* when its record exists, its content still has the recorded digest (else it
was damaged or changed by hand), each recorded input still has the fingerprint it had (else it was
recomputed since: the output is stale), recursively, and, for this run's own outputs, each
recorded parameter still has its value (`RUNTIME_ONLY_PARAMETERS` aside, which change how a run
goes, not what it computes). `Lineage` (hooks.py) applies this rule; this module is free of Kedro.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RECORD_SUFFIX = ".lineage.json"
RECORD_FORMAT = 1
# The settings that decide which images and how many crops a study has: a run never silently
# replaces outputs made with other values (hooks.py: `replace_outputs`).
GUARDED_PARAMETERS = ("max_images_per_class", "crops")
# Parameters (or whole blocks) that change how a run goes, not what it computes: a differing
# value never makes an output stale. `source_models` lists every model; the chosen one's spec is
# in the embedding's own fingerprint (plan.json), which extraction checks.
RUNTIME_ONLY_PARAMETERS = (
    "executor",
    "dask",
    "replace_outputs",
    "source_models",
    "ingestion.decode_workers",
    "ingestion.decode_memory_mb",
    "ingestion.download",
    "ingestion.download_timeout_s",
    "feature_extraction.decode_workers",
    "feature_extraction.decode_priority",
    "dks.workers",
    "dks.block_features",
    "dks.keep_shards_open",
    "transfer.workers",
    "transfer.maps.threads",
    "retrieval.workers",
    "few_shot.workers",
    # The export's check of the written file against the refit: how many test images it tries
    # and what agreement it demands decide whether the file is kept, not what it holds.
    "export.check_images",
    "export.min_agreement",
    "predict.batch_size",
    "predict.decode_workers",
)
_LIBRARIES = (
    "tensorflow",
    "keras",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "pillow",
    "numba",
    "kedro",
    "kedro-datasets",
)


def record_path(path: Path | str) -> Path:
    """Where the record of the output at `path` (a file or a folder) is kept."""
    path = Path(path)
    return path.parent / f".{path.name}{RECORD_SUFFIX}"


def read_record(path: Path | str) -> dict[str, Any] | None:
    """The record of the output at `path`; None when there is none. An unreadable record is a
    ValueError naming it."""
    location = record_path(path)
    try:
        content = location.read_bytes()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(content)
        if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
            raise ValueError(f"not a lineage record of format {RECORD_FORMAT}")
    except ValueError as error:
        raise ValueError(f"{location} is unreadable ({error})") from error
    return record


def write_record(path: Path | str, record: Mapping[str, Any]) -> None:
    """Write the record of the output at `path` atomically (a temporary file, then a rename)."""
    location = record_path(path)
    partial = location.with_name(f"{location.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    os.replace(partial, location)


def versions() -> dict[str, str | None]:
    """The code's and the libraries' versions, as installed."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    try:
        found["cnn_feature_behavior"] = metadata.version("cnn_feature_behavior")
    except metadata.PackageNotFoundError:
        found["cnn_feature_behavior"] = None
    found["git_commit"] = _git_commit()
    for name in _LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _git_commit() -> str | None:
    """The commit of the package's checkout (`-dirty` with uncommitted changes), if it is one."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit or None


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameter blocks as dotted keys (`dks.bins`), their values as JSON keeps them."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.loads(json.dumps(value, default=str))
    return flat


def is_runtime_only(key: str) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in RUNTIME_ONLY_PARAMETERS)


def changed_parameters(
    recorded: Mapping[str, Any], current: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """(key, recorded value, current value) of each parameter that now has another value,
    runtime-only ones aside; keys absent from either side are not compared."""
    was, now = flatten(recorded), flatten(current)
    return [
        (key, was[key], now[key])
        for key in sorted(was)
        if key in now and was[key] != now[key] and not is_runtime_only(key)
    ]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def shown(values: Mapping[str, Any]) -> str:
    """`key=value` pairs as a user types them after `--params`."""
    return ",".join(f"{key}={_shown_value(value)}" for key, value in flatten(values).items())


def _shown_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
