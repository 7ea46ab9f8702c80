"""The exported file: its metadata, and loading it where this project cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from builders.exported_models import exported_classifier, random_linear_map
from kedro.io import DatasetError

from cnn_feature_behavior.export.keras_model import Geometry
from cnn_feature_behavior.export.model_file import (
    ExportedModel,
    KerasModelDataset,
    read_metadata,
    save_model_file,
)
from cnn_feature_behavior.extraction.source_models import build_tiny_vgg

LAYERS = ["conv1_1", "conv5_3"]
METADATA = {"class_names": ["ant", "bee", "cat"], "input": {"crops": 1, "resize": 36, "crop": 32}}

# Run by a fresh interpreter in which importing this project fails.
STANDALONE = textwrap.dedent(
    """
    import importlib.abc, json, sys, zipfile

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "cnn_feature_behavior":
                raise ImportError(f"{name} must not be needed to load the exported model")
            return None

    sys.meta_path.insert(0, Refuse())
    import keras
    import numpy as np

    path, crops, out = sys.argv[1:4]
    model = keras.saving.load_model(path)
    names = json.loads(zipfile.ZipFile(path).read("metadata.json"))["cnn_feature_behavior"]
    np.save(out, model.predict(np.load(crops), verbose=0))
    print(json.dumps({"class_names": names["class_names"], "loaded": sorted(
        m for m in sys.modules if m.startswith("cnn_feature_behavior"))}))
    """
)


@pytest.fixture(scope="module")
def exported() -> ExportedModel:
    classifier = exported_classifier(
        build_tiny_vgg(include_fc=False, input_size=None, seed=4),
        LAYERS,
        lambda manifest: random_linear_map(np.array([0, 3, 5, 9]), ("ant", "bee", "cat"), fne=True),
        Geometry(1, 36, 32),
    )
    return ExportedModel(classifier.model, METADATA)


def test_metadata_is_in_the_files_own_metadata_json(tmp_path, exported):
    path = tmp_path / "out" / "classifier.keras"
    save_model_file(exported, path)
    keras_own = json.loads(zipfile.ZipFile(path).read("metadata.json"))
    assert keras_own["cnn_feature_behavior"] == METADATA
    assert "keras_version" in keras_own  # Keras' own keys are kept
    assert read_metadata(path) == METADATA
    assert sorted(p.name for p in path.parent.iterdir()) == ["classifier.keras"]  # no partial file


def test_the_file_loads_and_predicts_without_the_project(tmp_path, exported):
    path = tmp_path / "classifier.keras"
    save_model_file(exported, path)
    crops = np.random.default_rng(1).integers(0, 256, (5, 1, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "crops.npy", crops)
    (tmp_path / "standalone.py").write_text(STANDALONE)
    result = subprocess.run(
        [sys.executable, "standalone.py", str(path), "crops.npy", "out.npy"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"class_names": ["ant", "bee", "cat"], "loaded": []}
    np.testing.assert_allclose(
        np.load(tmp_path / "out.npy"), exported.model.predict_on_batch(crops), rtol=1e-5, atol=1e-6
    )


def test_the_dataset_round_trips_and_names_the_command_when_absent(tmp_path, exported):
    made_by = "kedro run --env imagefolder --pipelines export --params source_model=tiny"
    dataset = KerasModelDataset(filepath=str(tmp_path / "m" / "classifier.keras"), made_by=made_by)
    assert not dataset.exists()
    with pytest.raises(DatasetError) as error:
        dataset.load()
    assert made_by in str(error.value) and "classifier.keras" in str(error.value)
    dataset.save(exported)
    loaded = dataset.load()
    assert loaded.metadata == METADATA
    crops = np.zeros((2, 1, 32, 32, 3), np.float32)
    np.testing.assert_allclose(
        loaded.model.predict_on_batch(crops), exported.model.predict_on_batch(crops), rtol=1e-6
    )


def test_a_file_of_another_origin_is_named(tmp_path):
    other = tmp_path / "other.keras"
    other.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="other.keras is not a model file exported"):
        KerasModelDataset(filepath=str(other)).load()
