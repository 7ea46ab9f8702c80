"""One embedding's probe data for the classifier tests: a matrix, its labels and its folds'
(training part, held-out part) positions, with ridge's systems on every column, as the
evaluation gives them to the one solver dispatch (transfer.classifier.choose_c / refit /
fit_probe)."""

from __future__ import annotations

import numpy as np

from cnn_feature_behavior.transfer.classifier import FoldData, ProbeData
from cnn_feature_behavior.transfer.ridge import RidgeData, RidgeSystem


def probe_data(train, labels, test, folds) -> ProbeData:
    """ProbeData of one matrix with its folds' (training, held-out) positions, no
    restandardisation."""
    classes = np.unique(labels)
    fold_data = tuple(
        FoldData(
            train[fit],
            labels[fit],
            train[held],
            labels[held],
            system=RidgeSystem(RidgeData.of(train[fit], labels[fit], classes), None),
        )  # fmt: skip
        for fit, held in folds
    )
    return ProbeData(
        fold_data,
        train,
        labels,
        test,
        train_system=RidgeSystem(RidgeData.of(train, labels, classes), None),
    )
