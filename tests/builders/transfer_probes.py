"""One embedding's probe data for the classifier tests: a matrix, its labels and (fit part,
held-out part) positions, with ridge's systems on every column, as the evaluation gives them to
the one solver dispatch (transfer.classifier.choose_c / refit / fit_probe)."""

from __future__ import annotations

import numpy as np

from cnn_feature_behavior.transfer.classifier import ProbeData
from cnn_feature_behavior.transfer.ridge import RidgeData, RidgeSystem


def probe_data(train, labels, test, holdout) -> ProbeData:
    """ProbeData of one matrix with its (fit, held-out) positions, no restandardisation."""
    fit, held = holdout
    classes = np.unique(labels)
    return ProbeData(
        train[fit], labels[fit], train[held], labels[held], train, labels, test,
        fit_ridge=RidgeSystem(RidgeData.of(train[fit], labels[fit], classes), None),
        train_ridge=RidgeSystem(RidgeData.of(train, labels, classes), None),
    )  # fmt: skip
