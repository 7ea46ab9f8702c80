"""The written model checked against the refit: the same top-1 on some test images.

The refit's top-1 comes from the embedding's rows (the transfer evaluation's numbers); the
model's from the image files, through the whole exported graph as written to disk and read back.
They differ only by floating point (the features computed in another order, the standardisation
in float32), so a disagreement beyond a few images near a tie means a broken export.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_feature_behavior.export.fit import ExportFit
from cnn_feature_behavior.export.model_file import ExportedModel
from cnn_feature_behavior.export.predict import PredictSettings, classify


@dataclass(frozen=True)
class AgreementCheck:
    """The written model's top-1 against the refit's on some test images."""

    n_images: int
    n_agreeing: int
    disagreeing: tuple[str, ...] = ()

    @property
    def agreement(self) -> float:
        return self.n_agreeing / self.n_images if self.n_images else float("nan")


def agreement_check(
    exported: ExportedModel,
    fit: ExportFit,
    files: Mapping[str, Path],
    n_images: int,
    settings: PredictSettings,
) -> AgreementCheck:
    """Top-1 of the model on `n_images` test images (a seeded sample; `files`: each test image
    id's file) against the refit's; an image the model cannot read disagrees, with the reason."""
    n_images = min(n_images, len(fit.test_image_ids))
    if n_images == 0:
        return AgreementCheck(0, 0)
    chosen = np.sort(np.random.default_rng(0).permutation(len(fit.test_image_ids))[:n_images])
    ids = [fit.test_image_ids[i] for i in chosen]
    classified = classify(exported, [files[i] for i in ids], settings, show_progress=False)
    names = fit.class_names
    top = {
        p: int(np.argmax(probabilities))
        for p, probabilities in zip(classified.positions, classified.probabilities)
    }
    disagreeing = [f"{ids[p]}: {reason}" for p, reason in classified.rejects]
    disagreeing += [
        f"{ids[p]}: model {names[top[p]]}, refit {names[fit.test_predictions[chosen[p]]]}"
        for p in sorted(top)
        if top[p] != fit.test_predictions[chosen[p]]
    ]
    return AgreementCheck(n_images, n_images - len(disagreeing), tuple(disagreeing))
