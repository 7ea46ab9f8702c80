"""A Keras model file with this project's description in its own metadata.

A `.keras` file is a zip archive whose `metadata.json` Keras writes (its version, the date) and
never reads back. `save_model_file` adds one key to it, `cnn_feature_behavior`: the class names
in output order, the input the model takes and how to make it, the embedding and source model.
Anyone reads it back without this project:

    json.loads(zipfile.ZipFile("classifier.keras").read("metadata.json"))["cnn_feature_behavior"]

`KerasModelDataset` is the catalog's handle on such a file. kedro-datasets'
`tensorflow.TensorFlowModelDataset` saves the model alone, with no way to add the metadata.
A file is written beside its final name, flushed to disk and renamed into place, so a killed run
leaves the previous file or none, never a partial one.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
from kedro.io import AbstractDataset, DatasetError

from cnn_feature_behavior.extraction.embedding_store import durable_replace

METADATA_MEMBER = "metadata.json"
METADATA_KEY = "cnn_feature_behavior"


@dataclass(frozen=True)
class ExportedModel:
    """A Keras model and its description (the `cnn_feature_behavior` metadata)."""

    model: keras.Model
    metadata: dict[str, Any]


def save_model_file(exported: ExportedModel, path: Path) -> None:
    """Write the model to `path` (a `.keras` file) with its metadata, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.keras")
    described = path.with_name(f".{path.stem}.{os.getpid()}.described.keras")
    try:
        keras.saving.save_model(exported.model, partial)
        with zipfile.ZipFile(partial) as source, zipfile.ZipFile(described, "w") as target:
            for member in source.infolist():
                content = source.read(member)
                if member.filename == METADATA_MEMBER:
                    content = json.dumps(
                        {**json.loads(content), METADATA_KEY: exported.metadata}, indent=1
                    ).encode()
                target.writestr(member, content)
        with open(described, "rb+") as file:
            os.fsync(file.fileno())
        durable_replace(described, path)
    finally:
        partial.unlink(missing_ok=True)
        described.unlink(missing_ok=True)


def read_metadata(path: Path) -> dict[str, Any]:
    """The `cnn_feature_behavior` metadata of a model file; an error names the file."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(METADATA_MEMBER))[METADATA_KEY]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path} is not a model file exported by this project ({type(error).__name__}: {error})"
        ) from error


def load_model_file(path: Path) -> ExportedModel:
    """The model (standard Keras layers only: no custom objects) and its metadata."""
    metadata = read_metadata(path)
    return ExportedModel(keras.saving.load_model(path, compile=False), metadata)


class KerasModelDataset(AbstractDataset[ExportedModel, ExportedModel]):
    """An exported `.keras` model file; `made_by`: the command that writes it, shown when it is
    absent."""

    def __init__(self, filepath: str, made_by: str | None = None) -> None:
        self._filepath = Path(filepath)
        self._made_by = made_by

    def load(self) -> ExportedModel:
        if not self._filepath.is_file():
            hint = f"; write it with `{self._made_by}`" if self._made_by else ""
            raise DatasetError(f"no exported model at {self._filepath}{hint}")
        try:
            return load_model_file(self._filepath)
        except ValueError as error:
            raise DatasetError(str(error)) from error

    def save(self, data: ExportedModel) -> None:
        if not isinstance(data, ExportedModel):
            raise DatasetError(
                f"{self._filepath}: expected an ExportedModel to save, got {type(data).__name__}"
            )
        save_model_file(data, self._filepath)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "made_by": self._made_by}
