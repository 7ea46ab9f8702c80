"""How symmetric the DKS distribution of each layer kind is, from the stored DKS histograms.

The paper (Section 6, Figure 6) finds the DKS of convolutional features more symmetric around
0 than that of fully connected ones; with spatial and head layers of any CNN this table lets a
reader check it. The moments are those of the histogram's piecewise-uniform density
(`scipy.stats.rv_histogram`), the very distribution Figure 6 draws; on the 100 bins of width
0.02 the stored histograms use, they differ from the raw values' moments by about 0.01 (tested).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from cnn_feature_behavior.extraction.layer_kinds import (
    HEAD,
    LAYER_KIND_LABELS,
    LAYER_KINDS,
    SPATIAL,
    normalise_layer_kind,
)

# dks_histograms' `group` values that are a layer kind rather than one layer's name; manifests
# written before the spatial / head vocabulary said conv / fc.
KIND_GROUPS = ("conv", "fc", SPATIAL, HEAD)
HISTOGRAM_COLUMNS = ("dataset", "group", "bin_left", "bin_right", "percent")
SYMMETRY_DECIMALS = {"mean_dks": 3, "skewness": 2, "percent_above_zero": 1}
SYMMETRY_COLUMNS = ("dataset", "layer_kind", "mean_dks", "skewness", "percent_above_zero")


def kind_of_group(group: object) -> str | None:
    """SPATIAL or HEAD for a layer-kind group, None for one layer's name or `all`."""
    return normalise_layer_kind(str(group)) if str(group) in KIND_GROUPS else None


def rows_of_kind(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The rows of `table` whose `group` is the layer-kind group `kind`, old names included."""
    return table[table["group"].map(kind_of_group) == kind]


def histogram_moments(bin_left: np.ndarray, bin_right: np.ndarray, weight: np.ndarray) -> dict:
    """Mean, skewness and share above 0 (%) of one histogram (weights in any unit)."""
    order = np.argsort(bin_left)
    edges = np.append(np.asarray(bin_left, float)[order], np.asarray(bin_right, float)[order][-1])
    weight = np.asarray(weight, float)[order]
    if not np.isfinite(weight).all() or (weight < 0).any() or weight.sum() <= 0:
        raise ValueError("a DKS histogram needs non-negative finite weights with a positive sum")
    distribution = stats.rv_histogram((weight, edges), density=False)
    mean, skewness = distribution.stats(moments="ms")
    return {
        "mean_dks": float(mean),
        "skewness": float(skewness),
        "percent_above_zero": 100.0 * float(distribution.sf(0.0)),
    }


def dks_symmetry(histograms: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, layer kind) with a histogram: mean DKS, skewness, % above 0.

    Layer kinds are read from the `group` column (`spatial` / `head`, or `conv` / `fc` as
    written before); the layer kind column holds LAYER_KIND_LABELS' words.
    """
    missing = [column for column in HISTOGRAM_COLUMNS if column not in histograms.columns]
    if missing:
        raise ValueError(f"dks_histograms: missing column(s) {missing}")
    rows = []
    for kind in LAYER_KINDS:
        of_kind = rows_of_kind(histograms, kind)
        for dataset, part in of_kind.groupby("dataset", sort=True):
            try:
                moments = histogram_moments(
                    part["bin_left"].to_numpy(), part["bin_right"].to_numpy(), part["percent"]
                )
            except ValueError as error:
                raise ValueError(f"dks_histograms of {dataset}, {kind} layers: {error}") from None
            rows.append({"dataset": dataset, "layer_kind": LAYER_KIND_LABELS[kind], **moments})
    return pd.DataFrame(rows, columns=list(SYMMETRY_COLUMNS))


def symmetry_by_model(histograms_by_model: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """`dks_symmetry` of each source model's histograms: one row per (dataset, layer kind,
    source model), the models of one dataset and kind next to each other."""
    columns = ["dataset", "layer_kind", "source_model", *SYMMETRY_COLUMNS[2:]]
    tables = [
        dks_symmetry(table).assign(source_model=model)
        for model, table in histograms_by_model.items()
    ]
    if not tables:
        return pd.DataFrame(columns=columns)
    table = pd.concat(tables, ignore_index=True)
    kind_order = {LAYER_KIND_LABELS[kind]: position for position, kind in enumerate(LAYER_KINDS)}
    table = table.assign(_kind=table["layer_kind"].map(kind_order))
    table = table.sort_values(["dataset", "_kind", "source_model"], kind="stable")
    return table[columns].reset_index(drop=True)
