"""One writer per folder: a lock file naming the holder's host and process id.

Two runs writing the same embedding folder would delete each other's partial files and shards.
A run takes `<folder>/.lock` before it touches anything and removes it when done (also on
error); the run locks of lineage/run_lock.py are such locks too, under other names. The lock is
created complete or not at all (a finished temporary file hard-linked to the lock's name, which
fails if the name exists), so a crash never leaves a half-written lock. A lock whose process no
longer runs on this host is stale (a killed run) and is taken over with a warning, as is one whose
process id now belongs to a process started later (ids are reused; Linux, from /proc); a lock of a
live process, or of another host (whose processes cannot be checked from here), stops the run
with an error naming the holder. Written by hand: the standard library has no cross-host lock
and `fcntl` locks do not hold on every network file system.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class FolderLockedError(RuntimeError):
    """The folder is being written by another run (named in the message)."""


@contextmanager
def folder_lock(folder: Path, name: str = LOCK_FILE, what: str | None = None) -> Iterator[None]:
    """Hold `folder`'s lock (the file `name` in it) for the block; FolderLockedError naming the
    holder if another has it. `what` says what the lock guards in the error (the folder)."""
    path = Path(folder) / name
    mine = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": _process_start(os.getpid()),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "token": uuid.uuid4().hex,
    }
    while not _create(path, mine):
        holder = _holder(path)
        if holder is None:  # removed meanwhile: try again
            continue
        if not _is_stale(holder):
            raise FolderLockedError(
                f"{what or Path(folder)} is in use by process {holder.get('pid')} on "
                f"{holder.get('host')} (since {holder.get('since')}, lock file {path}); wait for "
                "that run to finish, or delete the lock file if you are sure no run uses the folder"
            )
        logger.warning(
            "%s: stale lock of process %s on %s (since %s), which no longer runs; taking it over",
            path,
            holder.get("pid"),
            holder.get("host"),
            holder.get("since"),
        )
        # Two runs taking over the same stale lock at once could both unlink it: a window of
        # microseconds after a crash, accepted.
        path.unlink(missing_ok=True)
    try:
        yield
    finally:
        if (_holder(path) or {}).get("token") == mine["token"]:
            path.unlink(missing_ok=True)


def live_holder(path: Path) -> dict[str, Any] | None:
    """The holder of the lock file at `path` while it holds it (a live process, or another
    host's); None when there is no lock or a stale one."""
    holder = _holder(Path(path))
    return None if holder is None or _is_stale(holder) else holder


def _create(path: Path, content: dict[str, Any]) -> bool:
    # Not named *.partial: the lock holder's save removes those.
    partial = path.with_name(f"{path.name}-{content['token']}.tmp")
    with open(partial, "w") as file:
        json.dump(content, file)
        file.flush()
        os.fsync(file.fileno())
    try:
        os.link(partial, path)
        return True
    except FileExistsError:
        return False
    finally:
        partial.unlink(missing_ok=True)


def _holder(path: Path) -> dict[str, Any] | None:
    """The lock's content; None if there is no lock; unreadable content counts as a live holder."""
    try:
        holder = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        return {"pid": "unknown (unreadable lock file)", "host": "unknown"}
    return holder if isinstance(holder, dict) else {"pid": "unknown", "host": "unknown"}


def _is_stale(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    started = _process_start(holder["pid"])
    return None not in (started, holder.get("started")) and started != holder["started"]


def _process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), where /proc tells; else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])  # field 22 of stat(5); the split drops pid and (comm)
