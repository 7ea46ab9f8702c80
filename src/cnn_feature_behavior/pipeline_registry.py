"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

STUDY_ORDER = (
    "ingestion",
    "feature_extraction",
    "dks",
    "calibration",
    "transfer",
    "retrieval",
    "few_shot",
    "reporting",
)
# Run by name only (`kedro run --pipelines similar`): they use the study's outputs on images the
# user names, and are no part of the study.
AFTER_STUDY = ("similar",)


def register_pipelines() -> dict[str, Pipeline]:
    """Register the study's pipelines; `__default__` runs all of them in study order."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines.pop("__default__", None)
    unknown = set(pipelines) - set(STUDY_ORDER) - set(AFTER_STUDY)
    if unknown:
        raise RuntimeError(f"Pipelines outside the study order: {sorted(unknown)}")
    pipelines["__default__"] = sum(
        (pipelines[name] for name in STUDY_ORDER if name in pipelines), Pipeline([])
    )
    return pipelines
