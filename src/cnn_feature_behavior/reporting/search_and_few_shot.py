"""Which layer to use for search and which for classification, and how each learns from few
images: the retrieval scores beside the transfer accuracy per layer, the few-shot table, their
verdict sentences and the tables across datasets (framework-free; the report parts call these).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cnn_feature_behavior.reporting import transfer_summary
from cnn_feature_behavior.transfer.comparisons import BEST_LAYER

METHOD_LABELS = {
    "nearest_class_mean": "nearest class mean",
    "logistic_regression": "logistic regression",
}
SEARCH_TABLE_DECIMALS = {
    "transfer_mean_per_class_accuracy": 3,
    "transfer_accuracy": 3,
    "map_at_10": 3,
    "map_ci_low": 3,
    "map_ci_high": 3,
}
ACROSS_DECIMALS = {"map_at_10": 3} | {
    f"{method}_{k}shot_accuracy": 3 for method in ("ncm", "logreg") for k in (1, 5, 10)
}


def embedding_name(embedding: str, layer: object) -> str:
    """`conv5_3`, `full network` or `FNE`: how a row is named in the tables and sentences."""
    if embedding == "layer":
        return str(layer)
    return transfer_summary.EMBEDDING_LABELS.get(embedding, embedding)


def _named(table: pd.DataFrame) -> pd.Series:
    return pd.Series(
        [embedding_name(e, layer) for e, layer in zip(table["embedding"], table["layer"])],
        index=table.index,
    )


def _interval(mean: float, low: float, high: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def search_table(retrieval_scores: pd.DataFrame, transfer_results: pd.DataFrame) -> pd.DataFrame:
    """Per embedding (layers in order, full network, FNE): the transfer mean per-class accuracy
    (the Transfer section's primary figure) and accuracy, means over the repetitions, beside the
    retrieval mAP@k with its 95% interval and whether it ties the best."""
    summary = transfer_summary.summarise(transfer_results)
    plain = summary[summary["selection"].isna()].assign(name=_named)
    per_class = dict(zip(plain["name"], plain["mean_per_class_accuracy"]))
    accuracy = dict(zip(plain["name"], plain["accuracy"]))
    k = int(retrieval_scores["k"].iloc[0]) if len(retrieval_scores) else 10
    names = _named(retrieval_scores)
    return pd.DataFrame(
        {
            "embedding": names.to_numpy(),
            "n_features": retrieval_scores["n_features"].to_numpy(),
            "transfer_mean_per_class_accuracy": [per_class.get(name, np.nan) for name in names],
            "transfer_accuracy": [accuracy.get(name, np.nan) for name in names],
            f"map_at_{k}": retrieval_scores["map_at_k"].to_numpy(),
            "map_ci_low": retrieval_scores["ci_low"].to_numpy(),
            "map_ci_high": retrieval_scores["ci_high"].to_numpy(),
            "tied_with_best_map": retrieval_scores["tied_with_best"].astype(bool).to_numpy(),
        }
    )


def search_verdict(retrieval_scores: pd.DataFrame, transfer_results: pd.DataFrame) -> str:
    """One sentence: the embedding that retrieves best (and those tied with it) against the
    layer that classifies best, the Transfer section's: chosen by its cross-validated score on
    the training images, never by its test figure."""
    if retrieval_scores.empty:
        return "No retrieval score was computed."
    best = retrieval_scores.loc[retrieval_scores["map_at_k"].idxmax()]
    k = int(best["k"])
    tied = retrieval_scores[
        retrieval_scores["tied_with_best"] & (retrieval_scores.index != best.name)
    ]
    tie_text = (
        f"; tied with it (paired 95% interval of the per-query difference holds 0): "
        f"{', '.join(_named(tied))}"
        if len(tied)
        else "; every other embedding is below it (paired 95% intervals)"
    )
    layers = retrieval_scores[retrieval_scores["embedding"] == "layer"]
    summary = transfer_summary.summarise(transfer_results)
    # The transfer verdict's best layer: chosen by cross-validated score on the training images.
    classifier = transfer_summary.chosen_rows(transfer_results, summary)[BEST_LAYER]
    parts = [
        f"For search, {embedding_name(best['embedding'], best['layer'])} retrieves best: "
        f"mAP@{k} {_interval(best['map_at_k'], best['ci_low'], best['ci_high'])}{tie_text}."
    ]
    if best["embedding"] != "layer" and len(layers):
        best_layer = layers.loc[layers["map_at_k"].idxmax()]
        parts.append(
            f"The best single layer for search is {best_layer['layer']} (mAP@{k} "
            f"{best_layer['map_at_k']:.3f})."
        )
    if classifier is not None:
        parts.append(
            f"For classification, the best single layer by cross-validated score is "
            f"{classifier['layer']} ({transfer_summary.figure(classifier)}, Transfer section)."
        )
    return " ".join(parts)


def few_shot_table(few_shot_results: pd.DataFrame) -> pd.DataFrame:
    """One row per embedding, one column per (method, k): mean accuracy [95% interval], a `*`
    where the embedding is the best or tied with it for that method and k."""
    results = few_shot_results.copy()
    results["name"] = _named(results)
    order = list(pd.unique(results["name"]))
    table = pd.DataFrame({"embedding": order})
    for method in pd.unique(results["method"]):
        for k in sorted(results.loc[results["method"] == method, "k"].unique()):
            rows = results[(results["method"] == method) & (results["k"] == k)].set_index("name")
            cells = [
                _interval(r["mean"], r["ci_low"], r["ci_high"])
                + (" *" if r["tied_with_best"] else "")
                for _, r in rows.reindex(order).iterrows()
            ]
            table[f"{METHOD_LABELS.get(method, method)}, {int(k)}-shot"] = cells
    return table


def few_shot_verdict(few_shot_results: pd.DataFrame) -> str:
    """The best embedding for each method at each k, with how many others tie with it."""
    if few_shot_results.empty:
        return "No few-shot accuracy was computed."
    sentences = []
    for method in pd.unique(few_shot_results["method"]):
        rows = few_shot_results[few_shot_results["method"] == method]
        best_by_k = []
        for k in sorted(rows["k"].unique()):
            at_k = rows[rows["k"] == k]
            best = at_k.loc[at_k["mean"].idxmax()]
            others = int(at_k["tied_with_best"].sum()) - 1
            best_by_k.append(
                f"{int(k)}-shot {embedding_name(best['embedding'], best['layer'])} "
                f"{_interval(best['mean'], best['ci_low'], best['ci_high'])}"
                + (f" ({others} tied)" if others > 0 else "")
            )
        sentences.append(
            f"{METHOD_LABELS.get(method, method).capitalize()}: {'; '.join(best_by_k)}."
        )
    episodes = int(few_shot_results["episodes"].min())
    return (
        " ".join(sentences)
        + f" Means over {episodes} episodes with 95% t intervals; tied: the paired interval of "
        "the per-episode difference with the best holds 0."
    )


def across_table(
    retrieval: Sequence[pd.DataFrame], few_shot: Sequence[pd.DataFrame]
) -> pd.DataFrame:
    """One row per (dataset, source model) with either table: the embedding that retrieves best
    and its mAP, and for each method and k the best few-shot embedding and its mean accuracy."""
    rows: dict[tuple[str, str], dict] = {}
    for table in retrieval:
        if table.empty:
            continue
        best = table.loc[table["map_at_k"].idxmax()]
        row = rows.setdefault((str(best["dataset"]), str(best["source_model"])), {})
        row["best_for_search"] = embedding_name(best["embedding"], best["layer"])
        row[f"map_at_{int(best['k'])}"] = float(best["map_at_k"])
    for table in few_shot:
        if table.empty:
            continue
        key = (str(table["dataset"].iloc[0]), str(table["source_model"].iloc[0]))
        row = rows.setdefault(key, {})
        for (method, k), group in table.groupby(["method", "k"], sort=True):
            best = group.loc[group["mean"].idxmax()]
            label = f"{'ncm' if method == 'nearest_class_mean' else 'logreg'}_{int(k)}shot"
            row[f"{label}_best"] = embedding_name(best["embedding"], best["layer"])
            row[f"{label}_accuracy"] = float(best["mean"])
    frame = pd.DataFrame(
        [{"dataset": d, "source_model": m, **values} for (d, m), values in sorted(rows.items())]
    )
    return frame
