"""The export's refit from the study's tables, its settings, and the check of a written model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from builders.exported_models import exported_classifier, random_linear_map
from PIL import Image

from cnn_feature_behavior.export.agreement import agreement_check
from cnn_feature_behavior.export.configuration import configuration_rows
from cnn_feature_behavior.export.fit import ExportSettings, StudyTables, fit_for_export
from cnn_feature_behavior.export.keras_model import Geometry
from cnn_feature_behavior.export.predict import PredictSettings
from cnn_feature_behavior.extraction.source_models import build_tiny_vgg
from cnn_feature_behavior.transfer.evaluation import evaluate_split
from cnn_feature_behavior.transfer.named_embeddings import Configuration
from cnn_feature_behavior.transfer.settings import TransferSettings

CLASSES = ["ant", "bee", "cat"]
TRANSFER = TransferSettings.from_params(
    {"classifier": "ridge", "fractions": [0.1, 1.0], "rankings": ["dks_count"]},
    {"bins": 20, "workers": 1},
    {"repetitions": 1, "seed": 3},
)


def tables(repetitions: int = 2) -> StudyTables:
    """Class k's feature 3k shifted up; seeded splits of 4 training images per class."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 8)
    ids = [f"{CLASSES[label]}/{i}" for i, label in enumerate(labels)]
    values = rng.standard_normal((labels.size, 12)).astype(np.float32)
    values[np.arange(labels.size), 3 * labels] += 3.0
    manifest = pd.DataFrame(
        {
            "feature": [f"conv{1 + j // 6}_1/n{j % 6}" for j in range(12)],
            "layer": [f"conv{1 + j // 6}_1" for j in range(12)],
            "filter": [j % 6 for j in range(12)],
            "layer_kind": "spatial",
        }
    )
    embedding = pd.DataFrame(
        values, columns=manifest["feature"], index=pd.Index(ids, name="image_id")
    )
    index = pd.DataFrame(
        {
            "image_id": ids,
            "path": [f"{i}.png" for i in ids],
            "label": labels,
            "class_name": [CLASSES[label] for label in labels],
            "split": None,
        }
    )
    rows, results = [], []
    for repetition in range(repetitions):
        is_train = np.tile(np.roll(np.arange(8) < 4, repetition), 3)
        rows.append(
            pd.DataFrame(
                {
                    "repetition": repetition,
                    "image_id": ids,
                    "split": np.where(is_train, "train", "test"),
                    "split_source": "seeded",
                }
            )
        )
        evaluation = evaluate_split(
            values, labels, is_train, manifest["layer"], CLASSES, TRANSFER, repetition=repetition
        )
        results.append(
            evaluation.results.assign(
                dataset="d", source_model="m", split_source="seeded", repetition=repetition
            )
        )
    return StudyTables(embedding, index, manifest, pd.concat(rows), pd.concat(results))


def test_the_refit_is_the_evaluations_row_of_its_repetition():
    study = tables()
    for repetition in (0, 1):
        fit = fit_for_export(
            study, ExportSettings(embedding="layer:conv1_1", repetition=repetition), TRANSFER
        )
        row = configuration_rows(
            Configuration.parse("layer:conv1_1", "export.embedding"), study.transfer_results
        )
        row = row[row["repetition"] == repetition].iloc[0]
        assert fit.accuracy == pytest.approx(row["accuracy"])
        assert fit.n_train == 12 and len(fit.test_image_ids) == 12
        assert fit.feature_names == tuple(f"conv1_1/n{j}" for j in range(6))
        assert len(fit.study_rows) == 2
        assert fit.chosen_by == "named in export.embedding"


@pytest.mark.parametrize(
    "spelling",
    ["full_network", "fne", "selection:dks_count:0.1", "selection:anova_f:0.1:fne"],
)
def test_each_configuration_is_refitted_as_its_row(spelling):
    """The export's map is the evaluation's refit: the row's solver, strength, features and
    test accuracy (transfer's own tests check refit_configuration against evaluate_split)."""
    study = tables(repetitions=1)
    fit = fit_for_export(study, ExportSettings(embedding=spelling), TRANSFER)
    row = fit.study_row
    assert row is not None and fit.linear_map.solver == row["solver"] == "ridge"
    assert fit.linear_map.regularisation["ridge_alpha"] == pytest.approx(row["ridge_alpha"])
    assert len(fit.feature_names) == row["n_features"]
    assert fit.accuracy == pytest.approx(row["accuracy"])
    assert fit.mean_per_class_accuracy == pytest.approx(row["mean_per_class_accuracy"])
    assert (fit.linear_map.fne is not None) == spelling.startswith(("fne", "selection:anova_f"))
    assert fit.class_names == tuple(CLASSES)


def test_the_standardisation_is_the_training_images():
    study = tables(repetitions=1)
    fit = fit_for_export(study, ExportSettings(embedding="layer:conv2_1"), TRANSFER)
    values = study.embedding.to_numpy(np.float64)
    train = values[~np.isin(study.embedding.index, fit.test_image_ids)][:, 6:]
    np.testing.assert_array_equal(fit.linear_map.columns, np.arange(6, 12))
    np.testing.assert_allclose(fit.linear_map.mean, train.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(fit.linear_map.scale, train.std(axis=0), rtol=1e-4)


@pytest.mark.parametrize(
    ("spelling", "message"),
    [
        ("layer:conv9_1", r"export.embedding 'layer:conv9_1': unknown configuration.*conv1_1"),
        ("selection:random:0.1", r"export.embedding 'selection:random:0.1': unknown config"),
        ("conv5_1", r"export.embedding: 'conv5_1' names no configuration"),
    ],
)
def test_a_configuration_the_evaluation_cannot_refit_is_named(spelling, message):
    with pytest.raises(ValueError, match=message):
        fit_for_export(tables(repetitions=1), ExportSettings(embedding=spelling), TRANSFER)


def test_the_default_is_the_study_choice():
    fit = fit_for_export(tables(), ExportSettings(), TRANSFER)
    assert fit.chosen_by.startswith("the transfer verdict's pick")
    assert fit.configuration.embedding in {"layer", "full_network", "fne"}


def test_an_absent_repetition_and_an_unsplit_image_are_named():
    study = tables(repetitions=1)
    with pytest.raises(
        ValueError, match=r"export.repetition 3: transfer_splits has repetitions \[0\]"
    ):
        fit_for_export(study, ExportSettings(repetition=3), TRANSFER)
    partial = dataclasses.replace(study, transfer_splits=study.transfer_splits.iloc[1:])
    with pytest.raises(ValueError, match="1 embedded image.*no split.*ant/0"):
        fit_for_export(partial, ExportSettings(), TRANSFER)


def test_export_settings_are_checked():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['layer'\]"):
        ExportSettings.from_params({"layer": "conv5_1"})
    with pytest.raises(ValueError, match="export.check_images"):
        ExportSettings.from_params({"check_images": -1})
    with pytest.raises(ValueError, match="export.min_agreement"):
        ExportSettings.from_params({"min_agreement": 2})


def test_the_check_names_each_disagreeing_image(tmp_path):
    """A model that is not the refit: the check says which test images disagree, and why."""
    fit = fit_for_export(tables(), ExportSettings(embedding="layer:conv1_1"), TRANSFER)
    exported = exported_classifier(
        build_tiny_vgg(include_fc=False, input_size=None, seed=1),
        ["conv1_1"],
        lambda manifest: random_linear_map(np.arange(2), CLASSES, seed=4),
        Geometry(1, 36, 32),
    )
    files = {}
    for k, image_id in enumerate(fit.test_image_ids):
        files[image_id] = tmp_path / f"{k}.png"
        Image.new("RGB", (40, 40), (20 * k, 100, 200 - 10 * k)).save(files[image_id])
    files[fit.test_image_ids[0]].write_bytes(b"not an image")
    check = agreement_check(exported, fit, files, 100, PredictSettings())
    assert check.n_images == 12
    assert check.n_agreeing + len(check.disagreeing) == 12
    reasons = dict(line.split(": ", 1) for line in check.disagreeing)
    assert reasons[fit.test_image_ids[0]].startswith("cannot decode")
    assert all(r.startswith(("model ", "cannot")) for r in reasons.values())
    assert agreement_check(exported, fit, files, 0, PredictSettings()).n_images == 0


def test_a_configuration_fitted_on_square_roots_is_refused_before_anything_is_written():
    """The large-scale discriminant classifies continuous values' square roots, which no standard
    Keras layer computes: the export says so and what to do instead."""
    import numpy as np
    import pytest

    from cnn_feature_behavior.export.fit import check_exportable
    from cnn_feature_behavior.transfer.refit import LinearMap

    def linear_map(representation: str) -> LinearMap:
        return LinearMap(
            configuration="layer:conv5_3", columns=np.arange(2), mean=np.zeros(2),
            scale=np.ones(2), fne=None, weights=np.zeros((2, 3)), intercepts=np.zeros(3),
            classes=np.arange(3), class_names=("a", "b", "c"), solver="discriminant",
            regularisation={"shrinkage": 0.1}, representation=representation,
        )  # fmt: skip

    check_exportable(linear_map("raw"))
    for representation in ("root", "root+raw"):
        with pytest.raises(ValueError, match=r"'layer:conv5_3'.*square roots.*logistic_regression"):
            check_exportable(linear_map(representation))
