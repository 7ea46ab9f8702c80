"""Images outside the image index (a user's query images) embedded as the study embedded its own.

The same source model and weights, the same taps (the study's feature manifest's layers), the
same crops, resize and preprocessing, computed by the study's own `stream.CropStream`: a query
image's vector is comparable with the dataset's only if it is made the same way, so the settings
are checked against the description the study's embedding recorded in its plan.json, and a
difference is an error naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cnn_feature_behavior.extraction.embedding_store import PLAN_FILE, ShardSpec, read_plan_file
from cnn_feature_behavior.extraction.stream import (
    EXTRACTION_CODE_VERSION,
    CropStream,
    ExtractionSettings,
    SourceModel,
    cached_extractor,
    plan_description,
)

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
# What must be equal between the study's embedding and the query images' (plan.json's keys).
SAME_AS_STUDY = ("source_model", "weights", "layers", "crops", "resize", "crop")


def image_files(path: str | Path, parameter: str) -> list[Path]:
    """`path` itself if it is a file, else every image file under the folder (recursive, by
    suffix in any case), sorted. A missing path or a folder without images is an error naming
    the `parameter`."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{parameter}: {path} is neither an image file nor a folder")
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ValueError(
            f"{parameter}: no image file under {path} (suffixes {', '.join(IMAGE_SUFFIXES)})"
        )
    return found


def check_same_as_study(
    embedding_folder: Path, model: SourceModel, settings: ExtractionSettings
) -> None:
    """Error unless the study's embedding (its plan.json) was made with this model, weights,
    layers and crops, naming each difference and the folder."""
    recorded = read_plan_file(Path(embedding_folder) / PLAN_FILE).get("description") or {}
    now = plan_description(model, settings, Path("."))
    different = [
        f"{key}: the embedding has {recorded.get(key)!r}, this run {now[key]!r}"
        for key in SAME_AS_STUDY
        if recorded.get(key) != now[key]
    ]
    if recorded.get("extraction_code_version", EXTRACTION_CODE_VERSION) != EXTRACTION_CODE_VERSION:
        different.append("extraction_code_version: the embedding is older; rerun the extraction")
    if different:
        raise ValueError(
            f"the query images would not be embedded as the study's embedding at "
            f"{embedding_folder} was ({'; '.join(different)}): run with the study's "
            "parameters (e.g. --params crops=...), or run feature_extraction again"
        )


def embed_image_files(
    paths: Sequence[Path], model: SourceModel, settings: ExtractionSettings, columns: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, rejects): one float32 row per usable image, indexed by its path (str), one
    column per name of `columns` (the study's features: their count is checked); the images
    that cannot be decoded with the reason (`path`, `reason`), never fatal."""
    settings.check()
    extractor = cached_extractor(model.backbone, model.layers)
    names = [str(p) for p in paths]
    stream = CropStream(extractor, model.spec, {n: Path(n) for n in names}, settings)
    ((_, features, rejects),) = stream([ShardSpec("query-images", tuple(names))])
    if features.shape[1] != len(columns):
        raise ValueError(
            f"the query images have {features.shape[1]} features, the study's manifest "
            f"{len(columns)}: the source model's layers differ from the study's"
        )
    for reject in rejects:
        logger.warning("Query image %s left out: %s", reject.path, reject.reason)
    rejected = {r.image_id for r in rejects}
    kept = [name for name in names if name not in rejected]
    return (
        pd.DataFrame(features, index=pd.Index(kept, name="path"), columns=list(columns)),
        pd.DataFrame(
            {"path": [r.path for r in rejects], "reason": [r.reason for r in rejects]},
            columns=["path", "reason"],
        ),
    )
