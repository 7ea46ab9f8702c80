"""The study across runs: which datasets and source models the cross-dataset tables and figures
cover, in the paper's order (by mean images per class)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pandas as pd

from cnn_feature_behavior.statistics.partitions import split_model_table_key

logger = logging.getLogger(__name__)


def mean_images(table: pd.DataFrame) -> dict[str, float]:
    """Mean images per class of each dataset of a table with that column."""
    return table.groupby("dataset")["mean_images_per_class"].first().astype(float).to_dict()


def by_images_per_class(table: pd.DataFrame) -> pd.DataFrame:
    """Rows by mean images per class (the paper's order of datasets), ties by name."""
    return table.sort_values(["mean_images_per_class", "dataset"], kind="stable").reset_index(
        drop=True
    )


def only_datasets_calibrated(properties: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    """Table 2 rows of the datasets this source model has thresholds for.

    Dataset properties are shared by every source model; a dataset ingested but not calibrated
    on this one is left out (and logged).
    """
    not_run = sorted(set(properties["dataset"]) - set(thresholds["dataset"]))
    if not not_run:
        return properties
    logger.info(
        "Table 2 across datasets leaves out %s: ingested but not calibrated on this source model",
        not_run,
    )
    return properties[~properties["dataset"].isin(not_run)].reset_index(drop=True)


def check_run(table: pd.DataFrame, name: str, dataset: str, source_model: str) -> None:
    """The table is one run's: its dataset and source_model columns hold one value each."""
    for column, expected in (("dataset", dataset), ("source_model", source_model)):
        if column not in table.columns:
            raise ValueError(f"{name}: no {column!r} column; it has {list(table.columns)}")
        found = sorted(set(table[column].astype(str)))
        if found != [expected]:
            raise ValueError(f"{name}: the {column!r} column must be {expected!r}, found {found}")


def tables_by_model(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`<model>/<table>/<dataset>` tables joined per source model, in the order given."""
    frames: dict[str, list[pd.DataFrame]] = {}
    for key, table in tables.items():
        model, _, _ = split_model_table_key(key)
        frames.setdefault(model, []).append(table)
    return {model: pd.concat(parts, ignore_index=True) for model, parts in frames.items()}


def datasets_shared_by_models(summaries: Mapping[str, pd.DataFrame]) -> list[str]:
    """The datasets run on two source models or more."""
    runs = pd.Series([name for table in summaries.values() for name in set(table["dataset"])])
    counts = runs.value_counts()
    return sorted(counts[counts >= 2].index)


def compared_by_model(
    summaries: Mapping[str, pd.DataFrame], what: str = "Figure 5 by source model"
) -> dict[str, pd.DataFrame]:
    """Each source model's rows of the datasets shared by two models or more; empty if none."""
    shared = datasets_shared_by_models(summaries)
    if not shared:
        logger.info(
            "%s: no dataset run for two models (models: %s)",
            what,
            sorted(summaries),
        )
        return {}
    return {
        model: table[table["dataset"].isin(shared)]
        for model, table in summaries.items()
        if table["dataset"].isin(shared).any()
    }


def transfer_side_by_side(study_transfer: pd.DataFrame) -> pd.DataFrame:
    """The cross-model transfer table with one row per dataset and one column per source model
    ("best layer: mean per-class accuracy", with the classifier in brackets where a dataset's
    models were fitted by different ones: auto chooses it from each run's size); empty unless
    two source models or more have transfer results."""
    models = sorted(set(study_transfer["source_model"]))
    if len(models) < 2:
        return pd.DataFrame()
    solvers = study_transfer.get("solver", pd.Series("", index=study_transfer.index))
    mixed = solvers.groupby(study_transfer["dataset"]).transform("nunique") > 1
    named = (" (" + solvers.astype(str) + ")").where(mixed, "")
    cells = study_transfer.assign(
        cell=[
            f"{layer}: {accuracy:.3f}{solver}" if layer and pd.notna(accuracy) else "n/a"
            for layer, accuracy, solver in zip(
                study_transfer["best_layer"],
                study_transfer["best_layer_mean_per_class_accuracy"],
                named,
            )
        ]
    )
    table = cells.pivot(index="dataset", columns="source_model", values="cell")
    return table.reindex(columns=models).fillna("not run").reset_index().rename_axis(columns=None)
