"""The dataset report's sentences about the run: which weights it used."""

from __future__ import annotations

import pandas as pd
import pytest

from cnn_feature_behavior.extraction.source_models.provenance import WeightsProvenance
from cnn_feature_behavior.reporting import dataset_report


def _provenance(published: bool, provenance: str, path: str) -> pd.DataFrame:
    return WeightsProvenance(
        "resnet50_imagenet", "file", path, "ab" * 32, published, provenance
    ).table()


def test_published_weights_are_named_with_their_provenance():
    table = _provenance(
        True, "published: Keras' own resnet50.h5 (md5 verified)", "data/06_models/r.h5"
    )
    assert dataset_report.weights_sentence(table) == (
        "Weights (data/06_models/r.h5): published: Keras' own resnet50.h5 (md5 verified)."
    )


def test_other_weights_are_said_not_to_be_the_models_published_ones():
    table = _provenance(
        False,
        "user file, not verified against the published weights",
        "data/06_models/resnet50_imagenet.weights.h5",
    )
    sentence = dataset_report.weights_sentence(table)
    assert sentence.startswith(
        "Weights (data/06_models/resnet50_imagenet.weights.h5, sha256 abababababababab...): "
        "user file, not verified against the published weights."
    )
    assert "describes this file's weights, not resnet50_imagenet's published ones" in sentence


def test_a_weights_table_of_other_than_one_row_is_an_error():
    table = _provenance(True, "published", "w.h5")
    with pytest.raises(ValueError, match="weights_provenance"):
        dataset_report.weights_sentence(pd.concat([table, table]))
