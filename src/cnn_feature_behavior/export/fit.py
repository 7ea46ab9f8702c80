"""The classifier to export: its configuration, refitted on one transfer split's training images.

The configuration is the one `export.embedding` names, or the study's choice
(`configuration.study_choice`). It is refitted on the training images of one repetition of
`transfer_splits` (`export.repetition`; the official split has one, 0) by the transfer
evaluation's own refit (`transfer.refit.refit_configuration`: the same folds, statistics, solver
and C search as that repetition's row, so the export cannot drift from the evaluation), and
scored on that repetition's test images: the accuracy the model card states, and the
predictions the exported model must agree with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.export.configuration import STUDY, configuration_rows, study_choice
from cnn_feature_behavior.statistics.tables import embedding_labels, embedding_matrix
from cnn_feature_behavior.transfer.classifier import RAW
from cnn_feature_behavior.transfer.named_embeddings import Configuration
from cnn_feature_behavior.transfer.refit import LinearMap, refit_configuration
from cnn_feature_behavior.transfer.settings import TransferSettings
from cnn_feature_behavior.transfer.splits import training_masks

EXPORT_KEYS = ("embedding", "repetition", "check_images", "min_agreement")


@dataclass(frozen=True)
class ExportSettings:
    """The `export` parameters (conf/base/parameters_export.yml)."""

    embedding: str = STUDY
    repetition: int = 0
    check_images: int = 20
    min_agreement: float = 0.9

    @classmethod
    def from_params(cls, export: dict[str, Any]) -> ExportSettings:
        unknown = sorted(set(export) - set(EXPORT_KEYS))
        if unknown:
            raise ValueError(f"export: unknown key(s) {unknown}; known: {list(EXPORT_KEYS)}")
        settings = cls(**export)
        if int(settings.check_images) != settings.check_images or settings.check_images < 0:
            raise ValueError(
                f"export.check_images must be an integer >= 0, got {settings.check_images!r}"
            )
        if not 0 <= settings.min_agreement <= 1:
            raise ValueError(
                f"export.min_agreement must lie in [0, 1], got {settings.min_agreement!r}"
            )
        return settings


@dataclass(frozen=True)
class ExportFit:
    """The refitted classifier and what the model card says of it."""

    configuration: Configuration
    chosen_by: str
    linear_map: LinearMap
    feature_names: tuple[str, ...]  # the embedding columns the classifier reads
    split_source: str
    repetition: int
    n_train: int
    test_image_ids: tuple[str, ...]
    test_labels: np.ndarray  # position in class_names; -1: a class it never trained on
    test_predictions: np.ndarray  # the refit's, positions in class_names
    study_rows: pd.DataFrame  # this configuration's transfer_results rows

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class of each score column: the exported model's output order."""
        return tuple(self.linear_map.class_names[int(c)] for c in self.linear_map.classes)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.test_labels == self.test_predictions))

    @property
    def mean_per_class_accuracy(self) -> float:
        """The evaluation's metric: the mean over the test images' classes of their accuracy."""
        per_class = [
            np.mean(self.test_predictions[self.test_labels == label] == label)
            for label in np.unique(self.test_labels)
        ]
        return float(np.mean(per_class)) if per_class else float("nan")

    @property
    def study_row(self) -> pd.Series | None:
        """The evaluation's row of this configuration and repetition (None: not in the table;
        several random draws: the first)."""
        rows = self.study_rows[self.study_rows["repetition"] == self.repetition]
        return None if rows.empty else rows.iloc[0]


@dataclass(frozen=True)
class StudyTables:
    """The study's outputs the export reads."""

    embedding: pd.DataFrame
    image_index: pd.DataFrame
    feature_manifest: pd.DataFrame
    transfer_splits: pd.DataFrame
    transfer_results: pd.DataFrame


def fit_for_export(
    tables: StudyTables, settings: ExportSettings, transfer: TransferSettings
) -> ExportFit:
    """The configuration to export, refitted on the training images of `settings.repetition`."""
    if settings.embedding == STUDY:
        configuration, chosen_by = study_choice(tables.transfer_results)
    else:
        configuration = Configuration.parse(settings.embedding, "export.embedding")
        chosen_by = "named in export.embedding"
    labels, class_names = embedding_labels(tables.embedding, tables.image_index)
    values = embedding_matrix(tables.embedding, tables.feature_manifest)
    is_train, split_source = _training_rows(tables, settings.repetition)
    manifest = tables.feature_manifest
    features = manifest["feature"].astype(str).to_numpy()
    try:
        linear_map = refit_configuration(
            values[is_train],
            labels[is_train],
            manifest["layer"].astype(str).to_numpy(),
            class_names,
            configuration.spelling,
            transfer,
            repetition=settings.repetition,
            feature_names=features.tolist(),
        )
    except ValueError as error:
        raise ValueError(f"export.embedding {configuration.spelling!r}: {error}") from error
    check_exportable(linear_map)
    test_rows = np.flatnonzero(~is_train)
    position = {int(label): i for i, label in enumerate(linear_map.classes)}
    return ExportFit(
        configuration=configuration,
        chosen_by=chosen_by,
        linear_map=linear_map,
        feature_names=tuple(features[linear_map.columns]),
        split_source=split_source,
        repetition=int(settings.repetition),
        n_train=int(is_train.sum()),
        test_image_ids=tuple(tables.embedding.index.astype(str)[test_rows]),
        test_labels=np.array([position.get(int(label), -1) for label in labels[test_rows]]),
        test_predictions=np.argmax(linear_map.scores(values[test_rows]), axis=1),
        study_rows=configuration_rows(configuration, tables.transfer_results),
    )


def _training_rows(tables: StudyTables, repetition: int) -> tuple[np.ndarray, str]:
    """Whether each embedded image trains in the repetition (`splits.training_masks`: an
    embedded image without a split is an error), and the repetition's split source."""
    masks = training_masks(tables.embedding.index, tables.transfer_splits)
    if repetition not in masks:
        raise ValueError(
            f"export.repetition {repetition}: transfer_splits has repetitions {sorted(masks)}"
        )
    splits = tables.transfer_splits
    source = splits.loc[splits["repetition"] == repetition, "split_source"].iloc[0]
    return masks[repetition], str(source)


def check_exportable(linear_map: LinearMap) -> None:
    """The exported graph holds standard Keras layers only, and none takes the signed square
    roots the large-scale discriminant classifies on continuous values (docs/transfer.md):
    such a configuration is refused, with what to do, before anything is written."""
    if linear_map.representation != RAW:
        raise ValueError(
            f"export.embedding {linear_map.configuration!r}: the evaluation fitted it with the "
            f"{linear_map.solver} on the values' square roots ({linear_map.representation}), "
            "which no standard Keras layer computes, so it cannot be exported as one .keras "
            "file; export an FNE configuration (fne, selection:<ranking>:<fraction>:fne), or "
            "run the study with --params transfer.classifier=logistic_regression"
        )
