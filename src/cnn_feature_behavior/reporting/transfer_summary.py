"""Transfer results summarised for the reports: means and standard deviations over the
repetitions, the best layer and the best selection, and the sentence that names them.

Everything here reads the `transfer_results` table (docs/data_contracts.md) and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

RESULT_COLUMNS = (
    "dataset",
    "source_model",
    "embedding",
    "layer",
    "selection",
    "fraction",
    "n_features",
    "split_source",
    "repetition",
    "classifier",
    "regularisation_c",
    "n_train",
    "n_test",
    "accuracy",
    "mean_per_class_accuracy",
)
# Written since the transfer evaluation chooses between solvers; a table written before them
# reads as its classifier's own solver with no edge flag.
SOLVER_COLUMNS = ("solver", "c_at_grid_edge")
# The columns as the transfer pipeline writes them.
WRITTEN_COLUMNS = (
    *RESULT_COLUMNS[: RESULT_COLUMNS.index("regularisation_c")],
    "solver",
    "regularisation_c",
    "c_at_grid_edge",
    *RESULT_COLUMNS[RESULT_COLUMNS.index("regularisation_c") + 1 :],
)
EMBEDDINGS = ("layer", "full_network", "fne")
SELECTIONS = ("dks_count", "dks_mean_abs", "dks_cover", "random")
DKS_SELECTIONS = ("dks_count", "dks_mean_abs", "dks_cover")
EMBEDDING_LABELS = {"full_network": "full network", "fne": "FNE"}
EMBEDDING_LONG_LABELS = {
    "full_network": "full network (continuous)",
    "fne": "FNE (three-valued)",
}
SELECTION_LABELS = {
    "dks_count": "DKS-ranked (classes past t+ / t-)",
    "dks_mean_abs": "DKS-ranked (mean |DKS|)",
    "dks_cover": "DKS-ranked (classes take turns)",
    "random": "random",
}
# The rows that tell one configuration from another; every other column is measured.
CONFIGURATION = ("embedding", "layer", "selection", "fraction")


def layer_sort_key(name: str) -> tuple:
    """VGG's conv layers by block and position, then fc layers by number, then any other name:
    equal keys, so that a stable sort keeps those in network (manifest) order."""
    match = re.fullmatch(r"conv(\d+)_(\d+)", str(name))
    if match:
        return (0, int(match[1]), int(match[2]), "")
    match = re.fullmatch(r"fc(\d+)", str(name))
    if match:
        return (1, int(match[1]), 0, "")
    return (2, 0, 0, "")


def check_results(results: pd.DataFrame, table_name: str = "transfer_results") -> None:
    """Required columns and known values, with the table and the offending values named."""
    missing = [column for column in RESULT_COLUMNS if column not in results.columns]
    if missing:
        raise ValueError(
            f"{table_name}: missing column(s) {missing}; it has {list(results.columns)}"
        )
    if results.empty:
        raise ValueError(f"{table_name}: no rows")
    unknown = sorted(set(results["embedding"].astype(str)) - set(EMBEDDINGS))
    if unknown:
        raise ValueError(f"{table_name}: unknown embedding value(s) {unknown}; known {EMBEDDINGS}")
    selections = set(results["selection"].dropna().astype(str))
    if selections - set(SELECTIONS):
        raise ValueError(
            f"{table_name}: unknown selection value(s) {sorted(selections - set(SELECTIONS))}; "
            f"known {SELECTIONS}"
        )
    layer_rows = results["embedding"] == "layer"
    if results.loc[layer_rows, "layer"].isna().any():
        raise ValueError(f"{table_name}: rows with embedding 'layer' must name their layer")
    selected = results["selection"].notna()
    if results.loc[selected, "fraction"].isna().any():
        raise ValueError(f"{table_name}: rows with a selection must give its fraction")


def _count_true(values: pd.Series) -> int:
    return int(values.astype("boolean").fillna(False).sum())


def _c_values(values: pd.Series) -> str:
    unique = sorted(set(float(v) for v in values.dropna()))
    return ", ".join(f"{v:.3g}" for v in unique) if unique else "n/a"


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: mean and std over repetitions (std NaN with one repetition).

    Columns: dataset, source_model, embedding, layer, selection, fraction, n_features,
    split_source, classifier, repetitions, n_train, n_test (means), accuracy, accuracy_std,
    mean_per_class_accuracy, mean_per_class_accuracy_std, regularisation_c (the chosen values,
    as text), solver (the solvers that produced the numbers), c_at_grid_edge (repetitions whose
    C is at the searched grid's edge). Ordered: layers in network order, full network, FNE, then the selections.
    """
    check_results(results)
    keys = ["dataset", "source_model", *CONFIGURATION]
    frame = results.copy()
    if "solver" not in frame.columns:
        frame["solver"] = frame["classifier"]
    if "c_at_grid_edge" not in frame.columns:
        frame["c_at_grid_edge"] = pd.NA
    # groupby drops null keys unless told; the null layer / selection rows are configurations too.
    grouped = frame.groupby(keys, dropna=False, sort=False)
    summary = grouped.agg(
        n_features=("n_features", "first"),
        split_source=("split_source", lambda s: ", ".join(sorted(set(map(str, s))))),
        classifier=("classifier", lambda s: ", ".join(sorted(set(map(str, s))))),
        repetitions=("repetition", "nunique"),
        n_train=("n_train", "mean"),
        n_test=("n_test", "mean"),
        accuracy=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        mean_per_class_accuracy=("mean_per_class_accuracy", "mean"),
        mean_per_class_accuracy_std=("mean_per_class_accuracy", "std"),
        regularisation_c=("regularisation_c", _c_values),
        solver=("solver", lambda s: ", ".join(sorted(set(map(str, s))))),
        # Repetitions whose chosen C is at the edge of the searched grid (widened where it bound).
        c_at_grid_edge=("c_at_grid_edge", _count_true),
    ).reset_index()
    summary["n_features"] = summary["n_features"].astype(np.int64)

    def order(row: pd.Series) -> tuple:
        embedding_rank = EMBEDDINGS.index(row["embedding"])
        if pd.isna(row["selection"]):
            return (0, embedding_rank, layer_sort_key(row["layer"]), "", 0.0)
        return (1, embedding_rank, (), str(row["selection"]), float(row["fraction"]))

    position = sorted(range(len(summary)), key=lambda i: order(summary.iloc[i]))
    return summary.iloc[position].reset_index(drop=True)


def _best(rows: pd.DataFrame) -> pd.Series | None:
    """The row with the highest mean accuracy; ties go to fewer features, then table order."""
    if rows.empty or rows["accuracy"].isna().all():
        return None
    rows = rows[rows["accuracy"].notna()]
    ranked = rows.assign(_position=np.arange(len(rows))).sort_values(
        ["accuracy", "n_features", "_position"], ascending=[False, True, True], kind="stable"
    )
    return ranked.iloc[0]


def best_layer(summary: pd.DataFrame) -> pd.Series | None:
    """The single layer with the highest mean accuracy, None when no layer was evaluated."""
    return _best(summary[(summary["embedding"] == "layer") & summary["selection"].isna()])


def best_selection(
    summary: pd.DataFrame, selections: Sequence[str] = SELECTIONS
) -> pd.Series | None:
    """The selected subset (of `selections`) with the highest mean accuracy, or None.

    Keeping every feature is no selection: rows with fraction 1 are the whole embedding again.
    """
    rows = summary[summary["selection"].isin(list(selections))]
    return _best(rows[rows["fraction"].astype(float) < 1.0])


def whole(summary: pd.DataFrame, embedding: str) -> pd.Series | None:
    """The full network or the FNE with every feature (no selection), or None."""
    rows = summary[(summary["embedding"] == embedding) & summary["selection"].isna()]
    return None if rows.empty else rows.iloc[0]


def random_at_same_size(summary: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    """The random selection of the same embedding and fraction as `row`, or None."""
    rows = summary[
        (summary["embedding"] == row["embedding"])
        & (summary["selection"] == "random")
        & np.isclose(summary["fraction"].astype(float), float(row["fraction"]))
    ]
    return None if rows.empty else rows.iloc[0]


def selection_label(row: pd.Series) -> str:
    """E.g. 'FNE, DKS-ranked (classes past t+ / t-), top 10% (422 features)'."""
    kept = "top" if row["selection"] in DKS_SELECTIONS else "a random"
    return (
        f"{EMBEDDING_LABELS[row['embedding']]}, {SELECTION_LABELS[row['selection']]}, "
        f"{kept} {100 * float(row['fraction']):g}% ({int(row['n_features']):,} features)"
    )


def _accuracy(row: pd.Series) -> str:
    text = f"{row['accuracy']:.3f}"
    if row["repetitions"] > 1 and np.isfinite(row["accuracy_std"]):
        text += f" \u00b1 {row['accuracy_std']:.3f}"
    return text


def split_description(summary: pd.DataFrame) -> str:
    """E.g. 'seeded split, mean ± standard deviation over 3 repetitions'."""
    sources = sorted(set(summary["split_source"]))
    repetitions = int(summary["repetitions"].max())
    text = f"{', '.join(sources)} split"
    if repetitions > 1:
        text += f", mean \u00b1 standard deviation over {repetitions} repetitions"
    return text


def transfer_verdict(results: pd.DataFrame) -> str:
    """One sentence: which layer and which selection did best, by mean accuracy over repetitions."""
    summary = summarise(results)
    dataset = ", ".join(sorted(set(summary["dataset"])))
    model = ", ".join(sorted(set(summary["source_model"])))
    layer = best_layer(summary)
    selection = best_selection(summary)
    parts = []
    if layer is not None:
        parts.append(f"the best single layer is {layer['layer']} (accuracy {_accuracy(layer)})")
    else:
        parts.append("no single layer was evaluated")
    if selection is not None:
        text = f"the best selection is the {selection_label(selection)} ({_accuracy(selection)}"
        baseline = random_at_same_size(summary, selection)
        if selection["selection"] != "random" and baseline is not None:
            text += f"; random at that size {_accuracy(baseline)}"
        parts.append(text + ")")
    references = [
        f"{EMBEDDING_LABELS[name]} {_accuracy(row)}"
        for name in ("full_network", "fne")
        if (row := whole(summary, name)) is not None
    ]
    solvers = ", ".join(sorted(set(", ".join(summary["solver"]).split(", "))))
    sentence = f"On {dataset} with {model} ({split_description(summary)}), " + " and ".join(parts)
    if references:
        sentence += "; with every feature: " + ", ".join(references)
    return sentence + f"; classifier: {solvers}."


def report_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The dataset report's table: one row per configuration, the measured columns."""
    return pd.DataFrame(
        {
            "embedding": summary["embedding"],
            "layer": summary["layer"].fillna(""),
            "selection": summary["selection"].fillna(""),
            # Only a selection keeps a share of the features; n/a elsewhere.
            "percent_kept": 100 * summary["fraction"].astype(float),
            "n_features": summary["n_features"],
            "accuracy": summary["accuracy"],
            "accuracy_std": summary["accuracy_std"],
            "mean_per_class_accuracy": summary["mean_per_class_accuracy"],
            "mean_per_class_accuracy_std": summary["mean_per_class_accuracy_std"],
            "regularisation_c": summary["regularisation_c"],
            "c_at_grid_edge": summary["c_at_grid_edge"],
            "solver": summary["solver"],
        }
    )


REPORT_TABLE_DECIMALS = {
    "percent_kept": 1,
    "accuracy": 3,
    "accuracy_std": 3,
    "mean_per_class_accuracy": 3,
    "mean_per_class_accuracy_std": 3,
}


def across_table(results: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The index's table: one row per (dataset, source model), sorted by dataset then model.

    Columns: dataset, source_model, split_source, repetitions, best_layer, best_layer_accuracy,
    full_network_accuracy, fne_accuracy, best_selection, best_selection_accuracy,
    random_same_size_accuracy (mean accuracies over the repetitions; NaN where not evaluated).
    """
    rows = []
    for table in results:
        summary = summarise(table)
        for (dataset, model), part in summary.groupby(["dataset", "source_model"], sort=True):
            layer = best_layer(part)
            selection = best_selection(part)
            full, fne = whole(part, "full_network"), whole(part, "fne")
            baseline = None if selection is None else random_at_same_size(part, selection)
            rows.append(
                {
                    "dataset": dataset,
                    "source_model": model,
                    "split_source": ", ".join(sorted(set(part["split_source"]))),
                    "repetitions": int(part["repetitions"].max()),
                    "best_layer": "" if layer is None else str(layer["layer"]),
                    "best_layer_accuracy": np.nan if layer is None else layer["accuracy"],
                    "full_network_accuracy": np.nan if full is None else full["accuracy"],
                    "fne_accuracy": np.nan if fne is None else fne["accuracy"],
                    "best_selection": "" if selection is None else selection_label(selection),
                    "best_selection_accuracy": (
                        np.nan if selection is None else selection["accuracy"]
                    ),
                    "random_same_size_accuracy": (
                        np.nan
                        if baseline is None or selection["selection"] == "random"
                        else baseline["accuracy"]
                    ),
                }
            )
    columns = [
        "dataset",
        "source_model",
        "split_source",
        "repetitions",
        "best_layer",
        "best_layer_accuracy",
        "full_network_accuracy",
        "fne_accuracy",
        "best_selection",
        "best_selection_accuracy",
        "random_same_size_accuracy",
    ]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["dataset", "source_model"], kind="stable").reset_index(drop=True)


ACROSS_TABLE_DECIMALS = {
    "best_layer_accuracy": 3,
    "full_network_accuracy": 3,
    "fne_accuracy": 3,
    "best_selection_accuracy": 3,
    "random_same_size_accuracy": 3,
}


def solvers_used(summary: pd.DataFrame) -> list[str]:
    """The classifiers that fitted the summary's rows (its solver column), sorted: the names the
    verdict gives."""
    return sorted(set(", ".join(summary["solver"]).split(", ")))
