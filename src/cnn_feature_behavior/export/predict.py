"""Classifying new images with an exported model: every image under a folder, its top classes.

The images are found as the similar pipeline finds its queries (`extraction.image_files`: one
file, or a folder at any depth by the readers' rule on names and links), and decoded and cropped
by extraction's own code (`extraction.stream.image_crops_or_reason`) with the crops the study ran
(the model's metadata), in threads at idle priority while the model runs on the previous batch,
as extraction does. A file that is no image, or that cannot be read, decoded or cropped, is
listed with the reason and skipped; only a folder without any image file is an error.

Each forward pass runs `batch_size` images' crops: the model's TimeDistributed source network
then sees `batch_size` crops at a time, extraction's batch (its forward pass takes
`batch_size // n_crops` whole images, `batch_size` crops). The images left at the end run
`batch_size // n_crops` at a time, as extraction's, so that padding wastes no more.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from cnn_feature_behavior.export.model_file import ExportedModel
from cnn_feature_behavior.extraction.image_files import image_files
from cnn_feature_behavior.extraction.stream import (
    DECODE_PRIORITIES,
    ImageReadError,
    image_crops_or_reason,
    lower_thread_priority,
    prefetched,
)
from cnn_feature_behavior.ingestion.image_checks import CEILINGS, ImageLimits, SizeCheck
from cnn_feature_behavior.ingestion.index import rejects_table


@dataclass(frozen=True)
class PredictSettings:
    """The `predict` parameters; batch, threads and priority default to extraction's, the size
    limits to ingestion's (`ingestion.image_limits`: an image ingestion would refuse is refused)."""

    top_k: int = 5
    batch_size: int = 10
    decode_workers: int = 2
    decode_priority: str = "idle"
    limits: ImageLimits = CEILINGS

    def check(self) -> None:
        if int(self.top_k) != self.top_k or self.top_k < 1:
            raise ValueError(f"predict.top_k must be an integer >= 1, got {self.top_k!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"predict.batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.decode_priority not in DECODE_PRIORITIES:
            raise ValueError(
                f"predict.decode_priority must be one of {DECODE_PRIORITIES}, got "
                f"{self.decode_priority!r}"
            )


@dataclass
class Classified:
    """Each classified image's probabilities (rows in `positions` order) and the images that
    could not be classified, with the reason."""

    positions: list[int] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)


def classify(
    exported: ExportedModel,
    paths: Sequence[Path],
    settings: PredictSettings,
    show_progress: bool = True,
) -> Classified:
    """Class probabilities of each image file (the model's metadata gives its crops)."""
    settings.check()
    geometry = exported.metadata["input"]
    cropper = _Cropper(
        geometry["resize"],
        geometry["crop"],
        geometry["crops"],
        SizeCheck(geometry["resize"], settings.limits),
    )
    passes = _Passes(
        exported.model, settings.batch_size, max(1, settings.batch_size // geometry["crops"])
    )
    result = Classified()
    depth = 2 * settings.batch_size + settings.decode_workers
    with (
        ThreadPoolExecutor(
            settings.decode_workers,
            initializer=lower_thread_priority,
            initargs=(settings.decode_priority,),
        ) as pool,
        tqdm(total=len(paths), unit="img", desc="predict", disable=not show_progress) as progress,
    ):
        for position, item in enumerate(prefetched(pool, cropper, paths, depth)):
            if isinstance(item, str):
                result.rejects.append((position, item))
            else:
                passes.add(position, item, result)
            progress.update(1)
        passes.finish(result)
    return result


@dataclass(frozen=True)
class _Cropper:
    """An image file's crops as the model's input (float32), or why it cannot be classified."""

    resize: int
    crop: int
    n_crops: int
    size_check: SizeCheck

    def __call__(self, path: Path) -> np.ndarray | str:
        problem = _size_problem(path, self.size_check)
        if problem:
            return problem
        try:
            crops = image_crops_or_reason(path, self.resize, self.crop, self.n_crops)
        except ImageReadError as error:  # predicting, an unreadable file is a reason too
            cause = error.__cause__ or error
            return (
                f"cannot read: {type(cause).__name__}: {getattr(cause, 'strerror', None) or cause}"
            )
        return crops if isinstance(crops, str) else crops.astype(np.float32)


def _size_problem(path: Path, size_check: SizeCheck) -> str | None:
    """Why the image is beyond the size limits, from its header (ingestion's check), or None;
    a file that does not open is left to the decoding, which gives the reason."""
    try:
        with Image.open(path) as image:
            return size_check.problem(image.width, image.height)
    except Exception:  # noqa: BLE001 - image_crops_or_reason reports it, with its reason
        return None


@dataclass
class _Passes:
    """Forward passes of `full` images; the images left at the end run `tail` at a time
    (extraction's images per pass), so that padding wastes no more than extraction's. Every
    pass is padded to its size: two input shapes, each traced once."""

    model: Any
    full: int
    tail: int
    waiting: list[tuple[int, np.ndarray]] = field(default_factory=list)

    def add(self, position: int, crops: np.ndarray, result: Classified) -> None:
        self.waiting.append((position, crops))
        if len(self.waiting) == self.full:
            self._run(self.waiting, self.full, result)
            self.waiting = []

    def finish(self, result: Classified) -> None:
        for start in range(0, len(self.waiting), self.tail):
            self._run(self.waiting[start : start + self.tail], self.tail, result)
        self.waiting = []

    def _run(self, batch: list[tuple[int, np.ndarray]], size: int, result: Classified) -> None:
        inputs = np.stack([crops for _, crops in batch])
        if len(batch) < size:
            padding = np.zeros((size - len(batch), *inputs.shape[1:]), inputs.dtype)
            inputs = np.concatenate([inputs, padding])
        probabilities = np.asarray(self.model.predict_on_batch(inputs), np.float64)[: len(batch)]
        result.positions += [position for position, _ in batch]
        result.probabilities += list(probabilities)


def predictions_table(
    names: Sequence[str], classified: Classified, class_names: Sequence[str], top_k: int
) -> pd.DataFrame:
    """`path`, then `class_1`, `probability_1`, ... `class_k`, `probability_k`, highest first."""
    k = min(top_k, len(class_names))
    columns = ["path"] + [
        f"{kind}_{i}" for i in range(1, k + 1) for kind in ("class", "probability")
    ]
    if not classified.positions:
        return pd.DataFrame(columns=columns)
    probabilities = np.stack(classified.probabilities)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    rows = []
    for row, position in enumerate(classified.positions):
        cells: list[object] = [names[position]]
        for index in order[row]:
            cells += [class_names[index], float(probabilities[row, index])]
        rows.append(cells)
    return pd.DataFrame(rows, columns=columns)


def predict_folder(
    exported: ExportedModel, folder: Path, settings: PredictSettings, shown_as: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions, rejects) of every image below `folder` (or of the image file `folder`);
    paths are shown as below `shown_as` (the folder as the user named it; default: `folder`)."""
    found = image_files(folder, "predict.images")
    shown = PurePosixPath(shown_as if shown_as is not None else str(folder))
    if Path(folder).is_file():
        names = [str(shown)]
    else:
        names = [str(shown / p) for p in found.images]
    classified = classify(exported, found.paths, settings)
    predictions = predictions_table(
        names, classified, exported.metadata["class_names"], settings.top_k
    )
    rejects = [(str(shown / p), reason) for p, reason in found.others]
    rejects += [(names[position], reason) for position, reason in classified.rejects]
    return predictions, rejects_table(sorted(rejects), stage="predict")
