"""Figure 1: one feature's inner-class and outer-class distributions, and the DKS between them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cnn_feature_behavior.statistics.dks import bin_indices

from .common import fit_titles, new_figure


@dataclass(frozen=True)
class InnerOuterDistributions:
    """Inner-class and outer-class distributions of one feature, as in Figure 1."""

    bin_edges: np.ndarray  # of the histograms
    inner_percent: np.ndarray
    outer_percent: np.ndarray
    edf_points: np.ndarray  # where the EDFs are evaluated
    inner_edf: np.ndarray
    outer_edf: np.ndarray
    max_distance_index: int  # into edf_points
    signed_dks: float  # > 0: the class has higher values (its EDF lies below the others')


def inner_outer_distributions(
    values: np.ndarray, is_inner: np.ndarray, bins: int | None, histogram_bins: int = 100
) -> InnerOuterDistributions:
    """Histograms and EDFs of the class's values against the other classes' values.

    The EDFs follow `dks.signed_ks`, so the marked gap is the pair's stored DKS: with `bins`, the
    values are binned into equal-width bins over the feature's range and the EDFs compared at the
    bin edges; with None, compared at every observed value. Outer EDF minus inner EDF where they
    differ most, negative on ties. The histograms use `bins`, or `histogram_bins` when None.
    """
    values = np.asarray(values, dtype=np.float64)
    is_inner = np.asarray(is_inner, dtype=bool)
    if values.shape != is_inner.shape or values.ndim != 1:
        raise ValueError(
            f"values {values.shape} and class membership {is_inner.shape} must be equal-length 1-D"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"{int((~np.isfinite(values)).sum())} non-finite feature value(s)")
    if (bins is not None and bins < 1) or histogram_bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins} and {histogram_bins}")
    n_inner = int(is_inner.sum())
    n_outer = int((~is_inner).sum())
    if n_inner == 0 or n_outer == 0:
        raise ValueError(f"need images inside and outside the class, got {n_inner} and {n_outer}")
    low, high = np.array([values.min()]), np.array([values.max()])
    n_bins = bins or histogram_bins
    index = bin_indices(values[None, :], low, high, n_bins)[0]
    inner_counts = np.bincount(index[is_inner], minlength=n_bins)
    outer_counts = np.bincount(index[~is_inner], minlength=n_bins)
    # A constant feature has every value in bin 0: give the bins a unit span from the value.
    span = (high[0] - low[0]) or 1.0
    edges = low[0] + span * np.arange(n_bins + 1) / n_bins
    if bins is None:
        points = np.unique(values)
        inner_edf = np.searchsorted(np.sort(values[is_inner]), points, side="right") / n_inner
        outer_edf = np.searchsorted(np.sort(values[~is_inner]), points, side="right") / n_outer
    else:
        points = edges[1:]
        inner_edf = np.cumsum(inner_counts) / n_inner
        outer_edf = np.cumsum(outer_counts) / n_outer
    difference = outer_edf - inner_edf
    signed = difference.max() if difference.max() > -difference.min() else difference.min()
    return InnerOuterDistributions(
        bin_edges=edges,
        inner_percent=100.0 * inner_counts / n_inner,
        outer_percent=100.0 * outer_counts / n_outer,
        edf_points=points,
        inner_edf=inner_edf,
        outer_edf=outer_edf,
        max_distance_index=int(np.flatnonzero(difference == signed)[0]),
        signed_dks=float(signed),
    )


def select_feature_class_pair(
    dks: pd.DataFrame, feature: str | None = None, class_name: str | None = None
) -> tuple[str, str, float]:
    """The (feature, class, DKS) Figure 1 shows: the configured pair, else the largest |DKS|.

    Given only a feature (or only a class), the largest |DKS| over the other; ties go to the
    first in table order (features in manifest order, classes in label order).
    """
    classes = [column for column in dks.columns if column != "layer"]
    if feature is not None and feature not in dks.index:
        raise ValueError(
            f"Figure 1: feature {feature!r} is not in the dks table (e.g. {list(dks.index[:3])})"
        )
    if class_name is not None and class_name not in classes:
        raise ValueError(
            f"Figure 1: class {class_name!r} is not in the dks table "
            f"(classes: {classes[:10]}{' ...' if len(classes) > 10 else ''})"
        )
    values = dks[classes].astype(np.float64)
    if feature is not None:
        values = values.loc[[feature]]
    if class_name is not None:
        values = values[[class_name]]
    magnitudes = np.abs(values.to_numpy())
    if not np.isfinite(magnitudes).any():
        raise ValueError("Figure 1: the dks table has no finite value to choose from")
    row, column = np.unravel_index(np.nanargmax(magnitudes), magnitudes.shape)
    return str(values.index[row]), str(values.columns[column]), float(values.iat[row, column])


def feature_class_pair_figure(
    values: np.ndarray,
    is_inner: np.ndarray,
    *,
    feature: str,
    class_name: str,
    dataset: str,
    stored_dks: float,
    bins: int | None,
) -> Figure:
    """Figure 1: inner/outer histograms (left) and EDFs with the DKS point marked (right)."""
    distributions = inner_outer_distributions(values, is_inner, bins)
    n_inner = int(np.asarray(is_inner, dtype=bool).sum())
    n_outer = len(is_inner) - n_inner
    edges = distributions.bin_edges
    figure = new_figure(11, 4.2)
    histogram_axes, edf_axes = figure.subplots(1, 2)
    inner_label = f"class '{class_name}' ({n_inner} images)"
    outer_label = f"other classes ({n_outer} images)"
    histogram_axes.stairs(
        distributions.outer_percent,
        edges,
        color="tab:gray",
        fill=True,
        alpha=0.5,
        label=outer_label,
    )
    histogram_axes.stairs(
        distributions.inner_percent, edges, color="tab:orange", linewidth=1.5, label=inner_label
    )
    histogram_axes.set_xlabel(f"activation of {feature}")
    histogram_axes.set_ylabel("images (% of the group)")
    histogram_axes.set_title(f"Inner and outer class histograms ({len(edges) - 1} bins)")
    histogram_axes.legend(loc="best", fontsize=8)

    points = distributions.edf_points
    # A post-step draws its last value with no width: carry both EDFs a little past the last
    # point so that their final rise to 1 shows.
    tail = (points[-1] - points[0]) * 0.03 or 1.0
    drawn = np.append(points, points[-1] + tail)
    edf_axes.step(
        drawn,
        np.append(distributions.outer_edf, distributions.outer_edf[-1]),
        where="post",
        color="tab:gray",
        label=outer_label,
    )
    edf_axes.step(
        drawn,
        np.append(distributions.inner_edf, distributions.inner_edf[-1]),
        where="post",
        color="tab:orange",
        label=inner_label,
    )
    at = distributions.max_distance_index
    gap = (distributions.inner_edf[at], distributions.outer_edf[at])
    edf_axes.vlines(
        points[at],
        *gap,
        color="tab:red",
        linewidth=2.5,
        label=f"DKS = {distributions.signed_dks:+.3f} (largest EDF gap)",
    )
    edf_axes.plot([points[at]] * 2, gap, "o", color="tab:red", ms=4)
    edf_axes.set_xlabel(f"activation of {feature}")
    edf_axes.set_ylabel("empirical distribution function")
    edf_axes.set_ylim(-0.02, 1.02)
    edf_axes.set_title(
        "EDFs "
        + (f"on {bins} bins" if bins else "(exact)")
        + " and the Kolmogorov-Smirnov distance"
    )
    edf_axes.legend(loc="lower right", fontsize=8)
    figure.suptitle(
        f"Figure 1 - feature {feature}, class '{class_name}' of {dataset} "
        f"(stored DKS {stored_dks:+.3f})"
    )
    return fit_titles(figure)
