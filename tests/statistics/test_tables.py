"""The statistics tables' layer groups: every layer, then the spatial and head layers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cnn_feature_behavior.statistics.tables import layer_groups


def _manifest(layers: list[str], kinds: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feature": [f"{layer}/n{i}" for i, layer in enumerate(layers)],
            "layer": layers,
            "layer_kind": kinds,
        }
    )


@pytest.mark.parametrize(
    ("spatial", "head"), [("spatial", "head"), ("conv", "fc")], ids=["new", "earlier manifest"]
)
def test_layer_groups_split_any_layer_names_into_spatial_and_head(spatial, head):
    layers = ["conv2_block1_out", "conv2_block1_out", "mixed10", "avg_pool", "predictions"]
    manifest = _manifest(layers, [spatial, spatial, spatial, head, head])
    groups = dict(layer_groups(manifest, with_kinds=True))
    assert list(groups) == [
        "conv2_block1_out",
        "mixed10",
        "avg_pool",
        "predictions",
        "spatial",
        "head",
    ]
    np.testing.assert_array_equal(groups["spatial"], [True, True, True, False, False])
    np.testing.assert_array_equal(groups["head"], [False, False, False, True, True])
    assert [name for name, _ in layer_groups(manifest, with_kinds=False)] == list(groups)[:4]


def test_a_spatial_only_model_has_no_head_group():
    groups = dict(layer_groups(_manifest(["a", "b"], ["spatial", "spatial"]), with_kinds=True))
    assert list(groups) == ["a", "b", "spatial"]


def test_a_layer_named_like_a_group_or_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="'head'.*layer"):
        layer_groups(_manifest(["head", "b"], ["spatial", "head"]), with_kinds=True)
    with pytest.raises(ValueError, match="unknown layer kind 'pool'"):
        layer_groups(_manifest(["a"], ["pool"]), with_kinds=True)
