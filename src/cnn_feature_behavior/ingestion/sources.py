"""How raw files get into raw_dir: scikit-learn's bundled digits, or an explicit download.

Nothing here touches the network unless `download_archives` is called, which the ingestion
pipeline does only when the user sets `ingestion.download: true`.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import shutil
import tarfile
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlparse

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

# Kept inside raw_dir so that a finished download is not repeated; readers never look there.
DOWNLOAD_MARKERS = "_downloads"
_CHUNK = 1 << 20
# Seconds any one connect or read of a download may wait (urllib's timeout is per socket
# operation, so a slow but moving download is not cut); ingestion.download_timeout_s.
DOWNLOAD_TIMEOUT_S = 60.0


def write_bundled_digits(raw_dir: Path) -> int:
    """Write scikit-learn's 1,797 8x8 digits as `<raw_dir>/<digit>/<index>.png` (8-bit grey).

    Only when raw_dir is absent or empty; returns the number of images written (0 if none).
    The images are written to a hidden sibling folder first and moved into place, so an
    interrupted run never leaves a partial dataset behind.
    """
    if raw_dir.is_dir() and any(raw_dir.iterdir()):
        return 0
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no network

    digits = load_digits()
    # Pixel values are counts 0..16 of the original 32x32 bitmap's 4x4 blocks.
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = raw_dir.with_name(f".{raw_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for index, (image, digit) in enumerate(zip(pixels, digits.target)):
        folder = staging / str(digit)
        folder.mkdir(exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{index:04d}.png")
    if raw_dir.is_dir():
        raw_dir.rmdir()
    staging.rename(raw_dir)
    logger.info("digits: wrote %d bundled images to %s", len(pixels), raw_dir)
    return len(pixels)


BUNDLED_WRITERS: dict[str, Callable[[Path], int]] = {"digits": write_bundled_digits}


class DownloadError(RuntimeError):
    """A download could not be configured, fetched or verified."""


def download_archives(
    raw_dir: Path,
    archives: Sequence[Mapping[str, Any]],
    dataset: str,
    opener: Callable[[str], IO[bytes]] | None = None,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> None:
    """Fetch each `{url, sha256}` archive, verify its checksum and unpack it into raw_dir.

    Tar and zip archives are unpacked; any other file (e.g. a `.mat` label file) is placed in
    raw_dir as is. A marker in `raw_dir/_downloads/` records each verified archive, so a second
    run does not fetch it again. The default opener is `urllib.request.urlopen` with `timeout_s`
    for each connect or read; a fetch that fails or stalls is a DownloadError naming the URL.
    """
    if opener is None:

        def opener(url: str) -> IO[bytes]:
            return urllib.request.urlopen(url, timeout=timeout_s)

    if not archives:
        raise DownloadError(
            f"{dataset}: no download source configured (dataset_source.archives in "
            f"conf/{dataset}/parameters.yml); fetch the dataset yourself into {raw_dir}"
        )
    for archive in archives:
        url = archive["url"]
        expected = archive.get("sha256")
        if not expected:
            raise DownloadError(
                f"{dataset}: no sha256 configured for {url}; add the archive's published sha256 "
                f"as dataset_source.archives[].sha256 in conf/{dataset}/parameters.yml"
            )
        filename = PurePosixPath(urlparse(url).path).name
        markers = raw_dir / DOWNLOAD_MARKERS
        marker = markers / f"{filename}.sha256"
        if marker.is_file() and marker.read_text().strip() == expected:
            logger.info("%s: %s already downloaded and unpacked", dataset, filename)
            continue
        markers.mkdir(parents=True, exist_ok=True)
        partial = markers / f"{filename}.part"
        logger.info("%s: downloading %s", dataset, url)
        sha256 = _fetch(opener, url, partial, dataset, timeout_s)
        if sha256 != expected.lower():
            partial.unlink()
            raise DownloadError(
                f"{dataset}: sha256 of {url} is {sha256}, expected {expected} "
                f"(conf/{dataset}/parameters.yml); the download was discarded"
            )
        _unpack(partial, filename, raw_dir)
        partial.unlink(missing_ok=True)
        marker.write_text(expected + "\n")
        logger.info("%s: verified and unpacked %s into %s", dataset, filename, raw_dir)


def _fetch(
    opener: Callable[[str], IO[bytes]], url: str, partial: Path, dataset: str, timeout_s: float
) -> str:
    """Write `url` to `partial`; its sha256 (hex). A failed or stalled fetch removes `partial`."""
    digest = hashlib.sha256()
    try:
        with opener(url) as response, open(partial, "wb") as out:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, TimeoutError) as error:  # URLError, HTTPError and socket timeouts included
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"{dataset}: fetching {url} failed: {type(error).__name__}: {error} (each connect or "
            f"read may wait {timeout_s:g} s: ingestion.download_timeout_s in "
            "conf/base/parameters_ingestion.yml); nothing was kept, rerun to try again"
        ) from error
    return digest.hexdigest()


def _unpack(path: Path, filename: str, raw_dir: Path) -> None:
    if tarfile.is_tarfile(path):
        _unpack_tar(path, filename, raw_dir)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            archive.extractall(raw_dir)
    else:
        shutil.move(path, raw_dir / filename)


def _unpack_tar(path: Path, filename: str, raw_dir: Path) -> None:
    """Unpack a tar archive whose every member was checked first: none out of raw_dir (absolute
    names unpacked under it), no link out of it, no device file (tarfile's "data" filter; on
    Pythons without extraction filters, 3.11 before 3.11.4 such as Debian 12's, the same checks
    here)."""
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        for member in members:
            problem = _refused(member, raw_dir)
            if problem:
                raise DownloadError(
                    f"{filename}: member {member.name!r} refused ({problem}); nothing was "
                    f"unpacked into {raw_dir}"
                )
        if hasattr(tarfile, "data_filter"):
            tar.extractall(raw_dir, members=members, filter="data")
        else:
            tar.extractall(raw_dir, members=[_as_data(member) for member in members])


def _refused(member: tarfile.TarInfo, raw_dir: Path) -> str | None:
    """Why tarfile's "data" filter refuses `member` under raw_dir, or None (an absolute name is
    not refused: it is unpacked under raw_dir)."""
    if hasattr(tarfile, "data_filter"):
        try:
            tarfile.data_filter(member, str(raw_dir))
        except tarfile.FilterError as error:
            return str(error)
        return None
    root = raw_dir.resolve()
    target = (root / member.name.lstrip("/")).resolve()  # leading slashes dropped, as the filter
    if not target.is_relative_to(root):
        return "a path out of raw_dir"
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return "a device, pipe or other special file"
    if member.issym() or member.islnk():
        if PurePosixPath(member.linkname).is_absolute():
            return f"a link to the absolute path {member.linkname}"
        base = target.parent if member.issym() else root
        if not (base / member.linkname).resolve().is_relative_to(root):
            return f"a link out of raw_dir, to {member.linkname}"
    return None


def _as_data(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """`member` as the "data" filter extracts it: owned by whoever unpacks it, no set-id, sticky
    or group / other write bits."""
    plain = copy.copy(member)
    plain.name = member.name.lstrip("/")
    plain.uid, plain.gid, plain.uname, plain.gname = os.getuid(), os.getgid(), "", ""
    plain.mode = member.mode & 0o755
    return plain
