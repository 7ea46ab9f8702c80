"""Every stored partition of a study table, with this run's own table in place of its file.

The cross-dataset steps (the threshold fit, the index, the comparison of source models) read a
`PartitionedDataset` of tables written by earlier runs, one file per dataset (or per
`<model>/<table>/<dataset>`). This run's table is a node input rather than a re-read file: that
orders the node after the table's producer, and a stale copy of it on disk is never read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

import pandas as pd

logger = logging.getLogger(__name__)

Table = TypeVar("Table")
Partitions = Mapping[str, Callable[[], Table]]


def gather_partitions(
    partitions: Partitions,
    current: Table,
    current_key: str,
    select: Callable[[str], bool] | None = None,
) -> dict[str, Table]:
    """Each stored partition (those whose key `select` accepts), loaded in key order, then this
    run's table under `current_key`, last; its stored file is not loaded."""
    gathered = {
        key: load()
        for key, load in sorted(partitions.items())
        if key != current_key and (select is None or select(key))
    }
    gathered[current_key] = current
    return gathered


def model_table_key(source_model: str, table: str, dataset: str) -> str:
    """The partition key of one table of one run under data/07_model_output."""
    return f"{source_model}/{table}/{dataset}"


def split_model_table_key(key: str) -> tuple[str, str, str] | None:
    """(source model, table, dataset) of a `<model>/<table>/<dataset>` key; None for others."""
    parts = key.split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def check_dataset_column(tables: Mapping[str, object], name: str) -> None:
    """Each table's `dataset` column holds exactly its partition key: a file renamed or copied
    under another dataset's name is an error, not a duplicate row."""
    for key, table in tables.items():
        columns = getattr(table, "columns", ())
        found = sorted(set(table["dataset"])) if "dataset" in columns else "no column"
        if found != [key]:
            raise ValueError(f"{name}/{key}: the 'dataset' column must be {key!r}, found {found}")


def gather_dataset_tables(
    partitions: Partitions, current: pd.DataFrame, current_key: str, name: str
) -> pd.DataFrame:
    """One table over every dataset stored (one partition each, named by its dataset) with this
    run's table in place of its own file; `name` is the table's, for messages."""
    tables = gather_partitions(partitions, current, current_key)
    check_dataset_column(tables, name)
    logger.info("%s: %d dataset(s): %s", name, len(tables), sorted(tables))
    return pd.concat(tables.values(), ignore_index=True)
