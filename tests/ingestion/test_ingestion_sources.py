"""Bundled digits and the optional, checksum-verified download (local archives only)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from cnn_feature_behavior.ingestion.sources import (
    DOWNLOAD_MARKERS,
    DownloadError,
    download_archives,
    write_bundled_digits,
)


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    raw_dir = tmp_path_factory.mktemp("raw") / "digits"
    assert write_bundled_digits(raw_dir) == 1797
    return raw_dir


def test_bundled_digits_are_written_as_8bit_grey_pngs(digits_dir):
    digits = load_digits()
    files = sorted(digits_dir.glob("*/*.png"))
    assert len(files) == 1797
    assert sorted(p.name for p in digits_dir.iterdir()) == [str(d) for d in range(10)]
    for index in (0, 1, 500, 1796):
        path = digits_dir / str(digits.target[index]) / f"{index:04d}.png"
        with Image.open(path) as image:
            assert image.mode == "L" and image.size == (8, 8)
            pixels = np.asarray(image, dtype=float)
        # Counts 0..16 scaled to 0..255; rounding is the only loss.
        np.testing.assert_allclose(pixels * 16 / 255, digits.images[index], atol=16 / 255 / 2)
    assert not list(digits_dir.parent.glob(".digits*")), "staging folder left behind"


def test_bundled_digits_never_overwrite_existing_files(tmp_path):
    raw_dir = tmp_path / "digits"
    (raw_dir / "0").mkdir(parents=True)
    (raw_dir / "0" / "mine.png").write_bytes(b"x")
    assert write_bundled_digits(raw_dir) == 0
    assert [p.name for p in raw_dir.rglob("*") if p.is_file()] == ["mine.png"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_bundled_digits(empty) == 1797


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def archives(tmp_path) -> dict[str, Path]:
    served = tmp_path / "served"
    served.mkdir()
    tgz = _tar_gz(served / "102flowers.tgz", {"jpg/image_00001.jpg": b"jpeg-bytes"})
    zipped = served / "extra.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("meta/notes.txt", "hello")
    mat = served / "imagelabels.mat"
    mat.write_bytes(b"MATLAB 5.0 MAT-file")
    return {"tgz": tgz, "zip": zipped, "mat": mat}


def test_download_verifies_and_unpacks_local_archives(tmp_path, archives):
    raw_dir = tmp_path / "raw"
    sources = [{"url": p.as_uri(), "sha256": _sha256(p)} for p in archives.values()]
    download_archives(raw_dir, sources, "flowers102")
    assert (raw_dir / "jpg" / "image_00001.jpg").read_bytes() == b"jpeg-bytes"
    assert (raw_dir / "meta" / "notes.txt").read_text() == "hello"
    assert (raw_dir / "imagelabels.mat").read_bytes() == b"MATLAB 5.0 MAT-file"
    assert sorted(p.name for p in (raw_dir / DOWNLOAD_MARKERS).iterdir()) == [
        "102flowers.tgz.sha256",
        "extra.zip.sha256",
        "imagelabels.mat.sha256",
    ]

    def no_fetch(url):
        raise AssertionError(f"fetched {url} again")

    download_archives(raw_dir, sources, "flowers102", opener=no_fetch)


def test_download_with_a_wrong_checksum_is_discarded(tmp_path, archives):
    raw_dir = tmp_path / "raw"
    wrong = [{"url": archives["tgz"].as_uri(), "sha256": "0" * 64}]
    with pytest.raises(DownloadError, match="expected 0000") as error:
        download_archives(raw_dir, wrong, "flowers102")
    assert _sha256(archives["tgz"]) in str(error.value)
    assert not (raw_dir / "jpg").exists()
    assert not list((raw_dir / DOWNLOAD_MARKERS).iterdir())


def test_download_refuses_an_archive_without_checksum(tmp_path, archives):
    calls = []
    with pytest.raises(DownloadError, match=r"no sha256 configured .*conf/food101/parameters.yml"):
        download_archives(
            tmp_path,
            [{"url": archives["tgz"].as_uri(), "sha256": None}],
            "food101",
            opener=calls.append,
        )
    assert calls == []


def test_download_without_a_source_says_where_to_configure_one(tmp_path):
    with pytest.raises(DownloadError, match="no download source configured.*conf/wood"):
        download_archives(tmp_path, [], "wood")


def _link(tar_path: Path, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Path:
    with tarfile.open(tar_path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        tar.addfile(info)
    return tar_path


# Python before 3.11.4 (Debian 12's 3.11.2) has no tarfile extraction filters (PEP 706).
@pytest.mark.parametrize("filters", ["tarfile's data filter", "no extraction filters"])
@pytest.mark.parametrize(
    "member",
    ["../outside.txt", "a symbolic link out", "a device"],
)
def test_download_refuses_archive_members_escaping_raw_dir(tmp_path, monkeypatch, filters, member):
    if filters == "no extraction filters":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    if member == "a symbolic link out":
        evil = _link(tmp_path / "evil.tgz", "jpg/link", "../../outside.txt")
    elif member == "a device":
        evil = _link(tmp_path / "evil.tgz", "jpg/null", "", tarfile.CHRTYPE)
    else:
        evil = _tar_gz(tmp_path / "evil.tgz", {member: b"x"})
    with pytest.raises(DownloadError, match=r"evil\.tgz: member .* refused"):
        download_archives(
            tmp_path / "raw", [{"url": evil.as_uri(), "sha256": _sha256(evil)}], "textures"
        )
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "raw" / "jpg").exists()


def test_download_unpacks_without_extraction_filters_too(tmp_path, archives, monkeypatch):
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    raw_dir = tmp_path / "raw"
    download_archives(
        raw_dir,
        [{"url": archives["tgz"].as_uri(), "sha256": _sha256(archives["tgz"])}],
        "flowers102",
    )
    assert (raw_dir / "jpg" / "image_00001.jpg").read_bytes() == b"jpeg-bytes"


@pytest.mark.parametrize("filters", ["tarfile's data filter", "no extraction filters"])
def test_download_unpacks_absolute_names_under_raw_dir(tmp_path, monkeypatch, filters):
    if filters == "no extraction filters":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    absolute = tmp_path / "elsewhere" / "absolute.txt"
    archive = _tar_gz(tmp_path / "abs.tgz", {str(absolute): b"x", "jpg/image_00001.jpg": b"j"})
    raw_dir = tmp_path / "raw"
    download_archives(raw_dir, [{"url": archive.as_uri(), "sha256": _sha256(archive)}], "textures")
    assert (raw_dir / str(absolute).lstrip("/")).read_bytes() == b"x"
    assert (raw_dir / "jpg" / "image_00001.jpg").read_bytes() == b"j"
    assert not absolute.exists()


# A download has a timeout (issue 16, finding 11): a stalled server must not hang the run.


def test_download_opens_urls_with_a_timeout(tmp_path, archives, monkeypatch):
    import urllib.request

    seen = []
    real_urlopen = urllib.request.urlopen

    def recording_urlopen(url, *args, **kwargs):
        seen.append(kwargs.get("timeout", args[1] if len(args) > 1 else None))
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", recording_urlopen)
    source = [{"url": archives["mat"].as_uri(), "sha256": _sha256(archives["mat"])}]
    download_archives(tmp_path / "a", source, "flowers102")
    download_archives(tmp_path / "b", source, "flowers102", timeout_s=5)
    assert seen == [60, 5]


def test_a_stalled_download_is_an_error_naming_the_url_and_the_timeout(tmp_path, archives):
    def stalled(url):
        raise TimeoutError("timed out")

    url = archives["tgz"].as_uri()
    with pytest.raises(DownloadError, match="ingestion.download_timeout_s") as error:
        download_archives(
            tmp_path,
            [{"url": url, "sha256": _sha256(archives["tgz"])}],
            "flowers102",
            opener=stalled,
        )
    assert url in str(error.value) and "timed out" in str(error.value)
    assert not list((tmp_path / DOWNLOAD_MARKERS).glob("*.part"))
