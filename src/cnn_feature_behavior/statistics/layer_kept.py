"""The share of each layer's (feature, class) pairs that the thresholds keep (Figure 10).

Read off the per-layer pair counts beyond each grid x (`calibration.layer_pair_counts`) at x =
t+ and x = t-, for the real and for the randomised labels; layers are summed into their kind
(spatial, head) and into all layers after the layers themselves.
"""

from __future__ import annotations

import pandas as pd

from cnn_feature_behavior.extraction.layer_kinds import LAYER_KINDS


def layer_kept_table(
    real_pair_counts: pd.DataFrame,
    randomised_pair_counts: pd.DataFrame,
    threshold: dict[str, float],
    kinds: pd.Series,
) -> pd.DataFrame:
    """Percent of each layer's (and all spatial / head / all layers') pairs beyond t+ or t-.

    `threshold` maps "positive" to t+ and "negative" to t-; `kinds` maps each layer to its
    layer kind. Columns: layer, side (positive, negative, both), percent_real,
    percent_randomised.
    """
    real = _kept_at_thresholds(real_pair_counts, threshold, kinds)
    randomised = _kept_at_thresholds(randomised_pair_counts, threshold, kinds)
    real_long = (
        real.rename_axis("layer")
        .reset_index()
        .melt("layer", var_name="side", value_name="percent_real")
    )
    randomised_long = (
        randomised.rename_axis("layer")
        .reset_index()
        .melt("layer", var_name="side", value_name="percent_randomised")
    )
    return real_long.merge(randomised_long, on=["layer", "side"], sort=False)


def _kept_at_thresholds(
    pair_counts: pd.DataFrame, threshold: dict[str, float], kinds: pd.Series
) -> pd.DataFrame:
    at_threshold = pd.concat(
        [
            pair_counts[(pair_counts["side"] == side) & (pair_counts["x"] == x)]
            for side, x in threshold.items()
        ]
    )
    if at_threshold["layer"].nunique() * 2 != len(at_threshold):
        raise ValueError(f"thresholds {threshold} are not both on the pair counts' grid")
    kept = at_threshold.pivot(index="layer", columns="side", values="count")
    kept["n_pairs"] = at_threshold.groupby("layer")["n_pairs"].first()
    kept = kept.loc[pd.unique(pair_counts["layer"])]
    groups = [kept]
    for kind in LAYER_KINDS:
        members = kept[kept.index.map(kinds) == kind]
        if len(members):
            groups.append(members.sum().to_frame(kind).T)
    groups.append(kept.sum().to_frame("all").T)
    kept = pd.concat(groups)
    kept["both"] = kept["positive"] + kept["negative"]
    return 100.0 * kept[["positive", "negative", "both"]].div(kept["n_pairs"], axis=0)
