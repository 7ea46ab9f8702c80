"""The statistics refuse an embedding extracted from another image index (issue 16, finding 5):
after re-ingesting with another max_images_per_class, dks must not compute on the old subset."""

from __future__ import annotations

import pandas as pd
import pytest
from pipelines.test_dks_pipeline import run_dks
from test_dks_blocks import blocks_params, planted_shards


def test_an_index_with_images_the_embedding_never_planned_is_refused(tmp_path):
    dataset, _, inputs = planted_shards(tmp_path / "embedding")
    index = inputs["image_index"]
    extra = index.iloc[:3].assign(
        image_id=[f"class0/new{k}" for k in range(3)], path=[f"class0/new{k}.jpg" for k in range(3)]
    )
    grown = pd.concat([index, extra], ignore_index=True)
    with pytest.raises(
        Exception,
        match=r"401 images.*image_index has 404.*3 of them.*class0/new0.*--pipelines feature_extraction",
    ):
        run_dks({**inputs, "image_index": grown, "embedding": dataset}, blocks_params())


def test_an_index_without_images_the_embedding_holds_is_refused(tmp_path):
    dataset, _, inputs = planted_shards(tmp_path / "embedding")
    shrunk = inputs["image_index"].iloc[:-51]  # one class fewer, e.g. max_images_per_class
    with pytest.raises(
        Exception, match=r"401 images.*image_index has 350.*51 .*not in image_index"
    ):
        run_dks({**inputs, "image_index": shrunk, "embedding": dataset}, blocks_params())


def test_the_embedding_of_the_current_index_is_accepted(tmp_path):
    dataset, _, inputs = planted_shards(tmp_path / "embedding")
    catalog = run_dks({**inputs, "embedding": dataset}, blocks_params())
    assert catalog.load("dks_class_sizes")["n_images"].sum() == 400
