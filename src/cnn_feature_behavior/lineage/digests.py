"""Digests of the files a run writes, to tell later whether they are still what was written.

SHA-256 of a file's bytes, remembered per file identity (resolved path, size, modification time,
inode) for the life of the process, so that a file read by several nodes of a run, or hashed by
its writer, is hashed once. Hand-written over hashlib: no library keeps such a cache.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from pathlib import Path

_known: dict[tuple[str, int, int, int], str] = {}
_lock = threading.Lock()


def _identity(path: Path) -> tuple[str, int, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino


def file_digest(path: Path | str) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    path = Path(path)
    key = _identity(path)
    with _lock:
        known = _known.get(key)
    if known is not None:
        return known
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    with _lock:
        _known[key] = digest
    return digest


def remember_digest(path: Path | str, digest: str) -> None:
    """Tell `file_digest` the digest of a file just written (its writer hashed the bytes)."""
    key = _identity(Path(path))
    with _lock:
        _known[key] = digest


def content_digest(path: Path | str, names: Iterable[str] | None = None) -> str | None:
    """The digest of a file, or of a folder's files (`names` in it, else all but hidden ones,
    recursively); None when nothing is there."""
    path = Path(path)
    if path.is_file():
        return "sha256:" + file_digest(path)
    if not path.is_dir():
        return None
    if names is not None:
        files = sorted(path / name for name in names if (path / name).is_file())
    else:
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    summary = [(f.relative_to(path).as_posix(), file_digest(f)) for f in files]
    return "sha256-files:" + hashlib.sha256(json.dumps(summary).encode()).hexdigest()
