"""Configuration names (one parser for export, similar and the evaluation's rows) and the whole
embeddings they name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cnn_feature_behavior.transfer.named_embeddings import (
    Configuration,
    every_embedding,
    parse_embedding,
)

LAYERS = ["conv1_1", "conv1_1", "conv5_3", "conv5_3", "conv5_3"]


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("layer:conv5_1", Configuration("layer", layer="conv5_1")),
        ("full_network", Configuration("full_network")),
        ("fne", Configuration("fne")),
        ("selection:dks_count:0.1", Configuration("full_network", None, "dks_count", 0.1)),
        ("selection:random:0.05:fne", Configuration("fne", None, "random", 0.05)),
        ("selection:dks_cover:1", Configuration("full_network", None, "dks_cover", 1.0)),
    ],
)
def test_spellings_parse_and_round_trip(spelling, expected):
    assert Configuration.parse(spelling, "export.embedding") == expected
    assert Configuration.parse(expected.spelling, "export.embedding") == expected


@pytest.mark.parametrize(
    "spelling",
    [
        "layer:",
        "layer",
        "conv5_1",
        "selection:dks_count",
        "selection:dks_sum:0.1",
        "selection:dks_count:0",
        "selection:dks_count:1.5",
        "selection:dks_count:ten",
        "selection:dks_count:0.1:ridge",
        "fne:extra",
    ],
)
def test_a_wrong_spelling_shows_the_spellings(spelling):
    with pytest.raises(ValueError, match=r"layer:<name>, full_network, fne, selection:<ranking>"):
        Configuration.parse(spelling, "export.embedding")


def test_a_parse_error_names_the_parameter():
    with pytest.raises(ValueError, match=r"^similar.embedding: 'conv5_1' names no configuration"):
        Configuration.parse("conv5_1", "similar.embedding")


def test_of_row_reads_a_transfer_results_row_back():
    for configuration in (
        Configuration("layer", layer="conv5_3"),
        Configuration("fne"),
        Configuration("fne", None, "dks_cover", 0.05),
    ):
        row = {
            "embedding": configuration.embedding,
            "layer": configuration.layer,
            "selection": configuration.selection if configuration.selection else np.nan,
            "fraction": configuration.fraction,
        }
        assert Configuration.of_row(pd.Series(row)) == configuration


def test_parse_embedding_gives_the_whole_embeddings_with_their_columns():
    assert [e.name for e in every_embedding(LAYERS)] == [
        "layer:conv1_1",
        "layer:conv5_3",
        "full_network",
        "fne",
    ]
    conv5_3 = parse_embedding("layer:conv5_3", LAYERS, "similar.embedding")
    np.testing.assert_array_equal(conv5_3.columns, [2, 3, 4])
    assert parse_embedding("fne", LAYERS, "similar.embedding").columns is None


@pytest.mark.parametrize("name", ["layer:conv9_9", "selection:dks_count:0.1", "conv5_3"])
def test_parse_embedding_refuses_selections_and_unknown_names_listing_the_known(name):
    with pytest.raises(ValueError, match=r"similar.embedding is .*: not an embedding .*conv1_1"):
        parse_embedding(name, LAYERS, "similar.embedding")
