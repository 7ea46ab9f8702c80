"""Transfer results summarised for the reports: figures with their intervals, the best layer and
the best selection chosen without the test images, and the sentence that names them.

Everything here reads the `transfer_results` table and, where given, `transfer_comparisons`
(docs/data_contracts.md). The best layer and the best selection are the transfer evaluation's
own choice (`cnn_feature_behavior.transfer.comparisons.best_rows`: the cross-validated mean
per-class accuracy on the training split); a table written before the evaluation recorded
cross-validated scores has no best row. Mean per-class accuracy is the primary figure, accuracy
beside it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cnn_feature_behavior.transfer.comparisons import (
    BEST_LAYER,
    BEST_SELECTION,
    BETTER,
    TIED,
    WORSE,
    best_rows,
)

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
    "n_train",
    "n_test",
    "accuracy",
    "mean_per_class_accuracy",
)
# The columns as the transfer pipeline writes them (docs/data_contracts.md).
WRITTEN_COLUMNS = (
    "dataset",
    "source_model",
    "embedding",
    "layer",
    "selection",
    "fraction",
    "draw",
    "n_features",
    "split_source",
    "repetition",
    "classifier",
    "solver",
    "regularisation_c",
    "ridge_alpha",
    "shrinkage",
    "c_at_grid_edge",
    "converged",
    "cv_loss",
    "cv_accuracy",
    "cv_mean_per_class_accuracy",
    "n_train",
    "n_test",
    "accuracy",
    "mean_per_class_accuracy",
)
# Written by later versions of the transfer pipeline: a table written before reads them as
# absent (NaN, no draw, its classifier as its solver, nothing flagged).
LATER_COLUMNS = {
    "draw": pd.NA,
    "regularisation_c": np.nan,
    "ridge_alpha": np.nan,
    "shrinkage": np.nan,
    "c_at_grid_edge": pd.NA,
    "converged": pd.NA,
    "cv_loss": np.nan,
    "cv_accuracy": np.nan,
    "cv_mean_per_class_accuracy": np.nan,
}
EMBEDDINGS = ("layer", "full_network", "fne")
SELECTIONS = ("dks_count", "dks_mean_abs", "dks_cover", "anova_f", "random")
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
    "anova_f": "ANOVA-F-ranked",
    "random": "random",
}
SOLVER_LABELS = {
    "logistic_regression": "multinomial logistic regression (L2; scikit-learn's C)",
    "ridge": "ridge regression on one-hot targets (alpha)",
    "discriminant": "regularised linear discriminant analysis on the square roots of the "
    "values (shrinkage)",
    "linear_svc": "LinearSVC, one-vs-rest, fixed C",
}
# Selections tied with the best one that the sentence names; the rest are counted.
TIED_SHOWN = 4
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


def with_later_columns(results: pd.DataFrame) -> pd.DataFrame:
    """The table with the columns of later versions added where absent (LATER_COLUMNS)."""
    frame = results.copy()
    if "solver" not in frame.columns:
        frame["solver"] = frame["classifier"]
    for column, absent in LATER_COLUMNS.items():
        if column not in frame.columns:
            frame[column] = absent
    return frame


def _count_true(values: pd.Series) -> int:
    return int(values.astype("boolean").fillna(False).sum())


def _count_false(values: pd.Series) -> int:
    return int((~values.astype("boolean")).fillna(False).sum())


def _values(values: pd.Series) -> str:
    unique = sorted(set(float(v) for v in values.dropna()))
    return ", ".join(f"{v:.3g}" for v in unique) if unique else ""


def _joined(values: pd.Series) -> str:
    return ", ".join(sorted(set(map(str, values))))


def key_of(row: pd.Series) -> tuple:
    """A row's configuration (embedding, layer, selection, fraction), None where absent."""
    return tuple(None if pd.isna(row[name]) else row[name] for name in CONFIGURATION)


def summarise(results: pd.DataFrame, comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per configuration: means over the repetitions (and the random draws) and their
    sample standard deviations (NaN with one value), the cross-validated scores, the chosen
    strengths, and, with `comparisons`, the 95% interval of the mean per-class accuracy.

    Columns: dataset, source_model, embedding, layer, selection, fraction, n_features,
    split_source, classifier, solver, repetitions, draws, n_train, n_test,
    mean_per_class_accuracy, mean_per_class_accuracy_std, ci_low, ci_high, accuracy,
    accuracy_std, cv_mean_per_class_accuracy, cv_loss, regularisation_c, ridge_alpha and
    shrinkage (the values chosen, as text), c_at_grid_edge (rows whose C is at the searched grid's edge),
    not_converged (rows whose refit did not converge). Ordered: layers in network order, full
    network, FNE, then the selections.
    """
    check_results(results)
    keys = ["dataset", "source_model", *CONFIGURATION]
    frame = with_later_columns(results)
    # groupby drops null keys unless told; the null layer / selection rows are configurations too.
    grouped = frame.groupby(keys, dropna=False, sort=False)
    summary = grouped.agg(
        n_features=("n_features", "first"),
        split_source=("split_source", _joined),
        classifier=("classifier", _joined),
        solver=("solver", _joined),
        repetitions=("repetition", "nunique"),
        draws=("draw", "nunique"),
        n_train=("n_train", "mean"),
        n_test=("n_test", "mean"),
        mean_per_class_accuracy=("mean_per_class_accuracy", "mean"),
        mean_per_class_accuracy_std=("mean_per_class_accuracy", "std"),
        accuracy=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        cv_mean_per_class_accuracy=("cv_mean_per_class_accuracy", "mean"),
        cv_loss=("cv_loss", "mean"),
        regularisation_c=("regularisation_c", _values),
        ridge_alpha=("ridge_alpha", _values),
        shrinkage=("shrinkage", _values),
        c_at_grid_edge=("c_at_grid_edge", _count_true),
        not_converged=("converged", _count_false),
    ).reset_index()
    summary["n_features"] = summary["n_features"].astype(np.int64)
    intervals = _own_intervals(comparisons)
    found = [intervals.get(key_of(row), (np.nan, np.nan)) for _, row in summary.iterrows()]
    summary.insert(summary.columns.get_loc("accuracy"), "ci_low", [low for low, _ in found])
    summary.insert(summary.columns.get_loc("accuracy"), "ci_high", [high for _, high in found])

    def order(row: pd.Series) -> tuple:
        embedding_rank = EMBEDDINGS.index(row["embedding"])
        if pd.isna(row["selection"]):
            return (0, embedding_rank, layer_sort_key(row["layer"]), "", 0.0)
        return (1, embedding_rank, (), str(row["selection"]), float(row["fraction"]))

    position = sorted(range(len(summary)), key=lambda i: order(summary.iloc[i]))
    return summary.iloc[position].reset_index(drop=True)


def _comparison_key(row: pd.Series) -> tuple:
    return tuple(
        None if pd.isna(row[name]) else row[name]
        for name in ("embedding", "layer", "ranking", "fraction")
    )


def _own_intervals(comparisons: pd.DataFrame | None) -> dict[tuple, tuple[float, float]]:
    """Each configuration's (ci_low, ci_high) of its mean per-class accuracy."""
    if comparisons is None or comparisons.empty:
        return {}
    own = comparisons[comparisons["baseline"] == "none"]
    return {_comparison_key(row): (row["ci_low"], row["ci_high"]) for _, row in own.iterrows()}


def chosen_rows(results: pd.DataFrame, summary: pd.DataFrame) -> dict[str, pd.Series | None]:
    """The summary rows of the best layer and the best selection (transfer.comparisons'
    best_rows: cross-validated scores only), None where not chosen."""
    best = best_rows(with_later_columns(results))
    keys = [key_of(row) for _, row in summary.iterrows()]
    return {
        name: None if key is None or key not in keys else summary.iloc[keys.index(key)]
        for name, key in best.items()
    }


def whole(summary: pd.DataFrame, embedding: str) -> pd.Series | None:
    """The full network or the FNE with every feature (no selection), or None."""
    rows = summary[(summary["embedding"] == embedding) & summary["selection"].isna()]
    return None if rows.empty else rows.iloc[0]


def selection_label(row: pd.Series) -> str:
    """E.g. 'FNE, DKS-ranked (classes past t+ / t-), top 10% (422 features)'."""
    kept = "a random" if row["selection"] == "random" else "top"
    return (
        f"{EMBEDDING_LABELS[row['embedding']]}, {SELECTION_LABELS[row['selection']]}, "
        f"{kept} {100 * float(row['fraction']):g}% ({int(row['n_features']):,} features)"
    )


def row_label(row: pd.Series) -> str:
    """A layer's name, the full network, the FNE, or a selection's label."""
    if row["embedding"] == "layer":
        return str(row["layer"])
    if pd.isna(row["selection"]):
        return EMBEDDING_LABELS[row["embedding"]]
    return selection_label(row)


def figure(row: pd.Series) -> str:
    """'0.812 [0.790, 0.833] (accuracy 0.845)': mean per-class accuracy with its interval where
    known, accuracy beside it."""
    text = f"{row['mean_per_class_accuracy']:.3f}"
    if np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"]):
        text += f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return text + f" (accuracy {row['accuracy']:.3f})"


def split_description(summary: pd.DataFrame) -> str:
    """E.g. 'seeded split, means over 3 repetitions'."""
    sources = sorted(set(", ".join(summary["split_source"]).split(", ")))
    repetitions = int(summary["repetitions"].max())
    text = f"{', '.join(sources)} split"
    if repetitions > 1:
        text += f", means over {repetitions} repetitions"
    return text


def solver_description(summary: pd.DataFrame) -> str:
    """The classifier every row was fitted with (several only in a table of mixed versions)."""
    solvers = sorted(set(", ".join(summary["solver"]).split(", ")))
    return "; ".join(SOLVER_LABELS.get(solver, solver) for solver in solvers)


def _percent_list(fractions: Sequence[float]) -> str:
    percents = [f"{100 * float(f):g}%" for f in sorted(fractions)]
    return percents[0] if len(percents) == 1 else ", ".join(percents[:-1]) + f" and {percents[-1]}"


def _against(comparisons: pd.DataFrame, embedding: str, ranking: str, baseline: str) -> str:
    """'better at 1% and 2%, no detectable difference at 5%' for one ranking and baseline."""
    rows = comparisons[
        (comparisons["embedding"] == embedding)
        & (comparisons["ranking"] == ranking)
        & (comparisons["baseline"] == baseline)
    ]
    parts = []
    for verdict in (BETTER, TIED, WORSE):
        fractions = rows.loc[rows["verdict"] == verdict, "fraction"].tolist()
        if fractions:
            parts.append(f"{verdict} at {_percent_list(fractions)}")
    return ", ".join(parts)


def _tied(comparisons: pd.DataFrame, baseline: str, summary: pd.DataFrame) -> list[str]:
    """The labels of the rows with no detectable difference from the best row of `baseline`."""
    rows = comparisons[(comparisons["baseline"] == baseline) & (comparisons["verdict"] == TIED)]
    keys = {_comparison_key(row) for _, row in rows.iterrows()}
    return [row_label(row) for _, row in summary.iterrows() if key_of(row) in keys]


def _dks_row(results, summary, best: pd.Series | None) -> pd.Series | None:
    """The DKS-ranked row the sentence sets against the baselines: the best selection if it is
    DKS-ranked, else the DKS-ranked selection of the best cross-validated score."""
    if best is not None and best["selection"] in DKS_SELECTIONS:
        return best
    dks = summary[summary["selection"].isin(DKS_SELECTIONS) & (summary["fraction"] < 1.0)]
    dks = dks[dks["cv_mean_per_class_accuracy"].notna()]
    if dks.empty:
        return None
    return dks.sort_values("cv_mean_per_class_accuracy", ascending=False, kind="stable").iloc[0]


def transfer_verdict(results: pd.DataFrame, comparisons: pd.DataFrame | None = None) -> str:
    """The transfer sentences: the best single layer and the best selection (chosen by their
    cross-validated scores on the training images) with their test figures and intervals, the
    rows tied with them, and, size by size, whether the DKS ranking beats random and ANOVA-F."""
    summary = summarise(results, comparisons)
    comparisons = comparisons if comparisons is not None else pd.DataFrame(columns=["baseline"])
    best = chosen_rows(results, summary)
    dataset = ", ".join(sorted(set(summary["dataset"])))
    model = ", ".join(sorted(set(summary["source_model"])))
    head = (
        f"On {dataset} with {model} ({split_description(summary)}; classifier: "
        f"{solver_description(summary)}, C chosen by cross-validation on the training images; "
        "mean per-class accuracy on the test images with its 95% interval, accuracy beside it)"
    )
    layer, selection = best[BEST_LAYER], best[BEST_SELECTION]
    if layer is None and selection is None:
        return head + (
            ": no best layer or selection is named, the table has no cross-validated scores "
            "(written before them: run the transfer pipeline again)."
        )
    sentences = []
    if layer is not None:
        text = (
            f"the best single layer by cross-validated score is {layer['layer']}, {figure(layer)}"
        )
        tied = _tied(comparisons, BEST_LAYER, summary)
        text += f"; tied with it (no detectable difference): {', '.join(tied)}" if tied else ""
        sentences.append(text + ".")
    if selection is not None:
        text = f"the best selection by cross-validated score is the {selection_label(selection)}, {figure(selection)}"
        tied = _tied(comparisons, BEST_SELECTION, summary)
        if len(tied) > TIED_SHOWN:
            more = len(tied) - TIED_SHOWN
            tied = [*tied[:TIED_SHOWN], f"{more} more (transfer_comparisons)"]
        text += f"; tied with it: {'; '.join(tied)}" if tied else ""
        sentences.append(text + ".")
    sentences += _baseline_sentences(results, summary, comparisons, selection)
    references = [
        f"{EMBEDDING_LABELS[name]} {figure(row)}"
        for name in ("full_network", "fne")
        if (row := whole(summary, name)) is not None
    ]
    if references:
        sentences.append("With every feature: " + ", ".join(references) + ".")
    sentences[1:] = [text[0].upper() + text[1:] for text in sentences[1:]]
    return head + ": " + " ".join(sentences)


def _baseline_sentences(results, summary, comparisons, selection) -> list[str]:
    """Size by size, the DKS ranking against random (mean of its draws) and ANOVA-F."""
    dks = _dks_row(results, summary, selection)
    if dks is None or comparisons.empty:
        return []
    name = f"{EMBEDDING_LABELS[dks['embedding']]}, {SELECTION_LABELS[dks['selection']]}"
    draws = summary.loc[summary["selection"] == "random", "draws"]
    random = f"random (the mean of {int(draws.max())} draws)" if len(draws) else "random"
    against = []
    for baseline, label in (("random", random), ("anova_f", "ANOVA-F")):
        text = _against(comparisons, dks["embedding"], dks["selection"], baseline)
        if text:
            against.append(f"against {label}: {text}")
    return [f"{name} " + "; ".join(against) + "."] if against else []


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
            "mean_per_class_accuracy": summary["mean_per_class_accuracy"],
            "ci_low": summary["ci_low"],
            "ci_high": summary["ci_high"],
            "accuracy": summary["accuracy"],
            "cv_mean_per_class_accuracy": summary["cv_mean_per_class_accuracy"],
            "regularisation_c": summary["regularisation_c"],
            "ridge_alpha": summary["ridge_alpha"],
            "shrinkage": summary["shrinkage"],
            "c_at_grid_edge": summary["c_at_grid_edge"],
            "not_converged": summary["not_converged"],
            "draws": summary["draws"],
        }
    )


REPORT_TABLE_DECIMALS = {
    "percent_kept": 1,
    "mean_per_class_accuracy": 3,
    "ci_low": 3,
    "ci_high": 3,
    "accuracy": 3,
    "cv_mean_per_class_accuracy": 3,
}


def comparison_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The dataset report's comparisons: each ranking against random and ANOVA-F size by size,
    and each layer against the best layer (the rest is in the CSV)."""
    rows = comparisons[comparisons["baseline"].isin(["random", "anova_f", BEST_LAYER])]
    return pd.DataFrame(
        {
            "embedding": rows["embedding"],
            "layer": rows["layer"].fillna(""),
            "ranking": rows["ranking"].fillna(""),
            "percent_kept": 100 * rows["fraction"].astype(float),
            "baseline": rows["baseline"],
            "difference": rows["difference"],
            "ci_low": rows["ci_low"],
            "ci_high": rows["ci_high"],
            "verdict": rows["verdict"],
        }
    ).reset_index(drop=True)


COMPARISON_TABLE_DECIMALS = {"percent_kept": 1, "difference": 3, "ci_low": 3, "ci_high": 3}
ACROSS_COLUMNS = (
    "dataset",
    "source_model",
    "split_source",
    "repetitions",
    "solver",
    "best_layer",
    "best_layer_mean_per_class_accuracy",
    "best_layer_ci",
    "tied_layers",
    "full_network_mean_per_class_accuracy",
    "fne_mean_per_class_accuracy",
    "best_selection",
    "best_selection_mean_per_class_accuracy",
    "best_selection_ci",
    "against_random",
    "against_anova_f",
)


def across_table(
    runs: Sequence[tuple[pd.DataFrame, pd.DataFrame | None]],
) -> pd.DataFrame:
    """The index's table: one row per (dataset, source model) from its results and comparisons
    (None where none is stored), sorted by dataset then model (ACROSS_COLUMNS; mean per-class
    accuracies; the best rows chosen by cross-validated score, none for a table without)."""
    rows = [_across_row(results, comparisons) for results, comparisons in runs]
    table = pd.DataFrame(rows, columns=list(ACROSS_COLUMNS))
    return table.sort_values(["dataset", "source_model"], kind="stable").reset_index(drop=True)


def _interval(row: pd.Series | None) -> str:
    if row is None or not np.isfinite(row["ci_low"]):
        return ""
    return f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _difference(comparisons, selection: pd.Series | None, baseline: str) -> str:
    """'+0.050 [0.030, 0.070] better' for the best selection against a baseline, at its size."""
    if comparisons is None or selection is None:
        return ""
    rows = comparisons[
        (comparisons["embedding"] == selection["embedding"])
        & (comparisons["ranking"] == selection["selection"])
        & np.isclose(comparisons["fraction"].astype(float), float(selection["fraction"]))
        & (comparisons["baseline"] == baseline)
    ]
    if rows.empty:
        return ""
    row = rows.iloc[0]
    return f"{row['difference']:+.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}] {row['verdict']}"


def _across_row(results: pd.DataFrame, comparisons: pd.DataFrame | None) -> dict:
    summary = summarise(results, comparisons)
    best = chosen_rows(results, summary)
    layer, selection = best[BEST_LAYER], best[BEST_SELECTION]
    full, fne = whole(summary, "full_network"), whole(summary, "fne")
    tied = [] if comparisons is None else _tied(comparisons, BEST_LAYER, summary)

    def mpca(row: pd.Series | None) -> float:
        return np.nan if row is None else row["mean_per_class_accuracy"]

    return {
        "dataset": summary["dataset"].iloc[0],
        "source_model": summary["source_model"].iloc[0],
        "split_source": ", ".join(sorted(set(summary["split_source"]))),
        "repetitions": int(summary["repetitions"].max()),
        "solver": ", ".join(sorted(set(", ".join(summary["solver"]).split(", ")))),
        "best_layer": "" if layer is None else str(layer["layer"]),
        "best_layer_mean_per_class_accuracy": mpca(layer),
        "best_layer_ci": _interval(layer),
        "tied_layers": ", ".join(tied),
        "full_network_mean_per_class_accuracy": mpca(full),
        "fne_mean_per_class_accuracy": mpca(fne),
        "best_selection": "" if selection is None else selection_label(selection),
        "best_selection_mean_per_class_accuracy": mpca(selection),
        "best_selection_ci": _interval(selection),
        "against_random": _difference(comparisons, selection, "random"),
        "against_anova_f": _difference(comparisons, selection, "anova_f"),
    }


ACROSS_TABLE_DECIMALS = {
    "best_layer_mean_per_class_accuracy": 3,
    "full_network_mean_per_class_accuracy": 3,
    "fne_mean_per_class_accuracy": 3,
    "best_selection_mean_per_class_accuracy": 3,
}


def solvers_used(summary: pd.DataFrame) -> list[str]:
    """The classifiers that fitted the summary's rows (its solver column), sorted: the names the
    verdict gives."""
    return sorted(set(", ".join(summary["solver"]).split(", ")))
