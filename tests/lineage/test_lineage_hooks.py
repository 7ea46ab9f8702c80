"""The lineage hook on a toy pipeline run by Kedro's runner (issue 27, "Lineage" and
"Isolation"): records beside every output, stale, damaged and unrecorded inputs refused with the
command that refreshes them, outputs of other study settings never replaced unasked."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from kedro.framework.hooks import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import ParallelRunner, SequentialRunner, ThreadRunner
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.partitions import PartitionedDataset

from cnn_feature_behavior.lineage import digests, records
from cnn_feature_behavior.lineage.hooks import (
    LineageHooks,
    OutputsWouldBeReplacedError,
    StaleInputError,
    UnsupportedRunnerError,
)


def make(seed: int) -> pd.DataFrame:
    return pd.DataFrame({"value": [seed, seed + 1, seed + 2]})


def double(table: pd.DataFrame, factor: int) -> pd.DataFrame:
    return table * factor


def halve(table: pd.DataFrame) -> pd.DataFrame:
    return table / 2


def total(table: pd.DataFrame, max_images_per_class: int | None) -> pd.DataFrame:
    return pd.DataFrame({"total": [float(table["value"].sum())]})


def gather(tables: dict) -> pd.DataFrame:
    return pd.DataFrame({"key": sorted(tables), "rows": [len(tables[k]()) for k in sorted(tables)]})


PIPELINES = {
    "make": Pipeline([node(make, "params:seed", "raw_table", name="make", namespace="make")]),
    "double": Pipeline(
        [
            node(
                double,
                ["raw_table", "params:factor"],
                "doubled_in_memory",
                name="d",
                namespace="double",
            ),
            node(halve, "doubled_in_memory", "doubled", name="h", namespace="double"),
        ]
    ),
    "total": Pipeline(
        [
            node(
                total,
                ["doubled", "params:max_images_per_class"],
                "totals",
                name="total",
                namespace="total",
            )
        ]
    ),
    "gather": Pipeline([node(gather, "all_tables", "gathered", name="g", namespace="gather")]),
}


class Study:
    """Runs PIPELINES with the hook, as a KedroSession would call it."""

    def __init__(self, folder):
        self.folder = folder
        self.hooks = LineageHooks()

    def path(self, name: str) -> str:
        return str(self.folder / "data" / f"{name}.parquet")

    @staticmethod
    def shown(name: str) -> str:
        """The output's path as records and messages give it: relative to the project."""
        return f"data/{name}.parquet"

    def catalog(self, params: dict) -> DataCatalog:
        catalog = DataCatalog(
            {
                name: ParquetDataset(filepath=self.path(name))
                for name in ("raw_table", "doubled", "totals", "gathered")
            }
        )
        catalog["all_tables"] = PartitionedDataset(
            path=str(self.folder / "data" / "parts"),
            dataset="pandas.ParquetDataset",
            filename_suffix=".parquet",
        )
        values = {
            "seed": 1,
            "factor": 2,
            "max_images_per_class": 3,
            "dataset": "toy",
            "source_model": "tiny",
            "executor": "local",
            **params,
        }
        catalog["parameters"] = MemoryDataset(values)
        for key, value in values.items():
            catalog[f"params:{key}"] = MemoryDataset(value)
        return catalog

    def run(self, *names: str, runner=None, **params) -> None:
        pipeline = sum((PIPELINES[n] for n in names), Pipeline([]))
        catalog = self.catalog(params)
        runner = runner or SequentialRunner()
        run_params = {
            "project_path": str(self.folder),
            "env": "toy",
            "pipeline_names": list(names),
            "runtime_params": params,
            "run_id": "test",
            "runner": str(runner),  # as KedroSession.run gives it
        }
        self.hooks.before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
        manager = _create_hook_manager()
        manager.register(self.hooks)
        try:
            runner.run(pipeline, catalog, hook_manager=manager)
        except Exception:
            self.hooks.on_pipeline_error()
            raise
        self.hooks.after_pipeline_run()


@pytest.fixture
def study(tmp_path):
    study = Study(tmp_path)
    study.run("make", "double", "total")
    return study


def test_every_output_has_a_record_of_its_inputs_parameters_and_settings(study):
    record = records.read_record(study.path("totals"))
    doubled = records.read_record(study.path("doubled"))
    assert record["inputs"] == {
        "doubled": {"path": study.shown("doubled"), "fingerprint": doubled["content"]}
    }
    assert record["content"] == digests.content_digest(study.path("totals"))
    assert record["parameters"] == {"max_images_per_class": 3}
    assert record["settings"] == {"max_images_per_class": 3}
    assert record["pipeline"] == "total" and record["node"] == "total.total"
    assert {"numpy", "tensorflow", "keras", "pandas", "git_commit"} <= set(record["versions"])
    # The in-memory step between: doubled's record names raw_table and the factor it was made with.
    assert set(doubled["inputs"]) == {"raw_table"}
    assert doubled["parameters"] == {"factor": 2}
    assert (study.folder / "data" / ".totals.parquet.lineage.json").is_file()


@pytest.mark.parametrize(
    "runner",
    [ThreadRunner(), ThreadRunner(is_async=True), SequentialRunner(is_async=True)],
    ids=["threads", "threads-async", "sequential-async"],
)
def test_the_records_are_the_same_under_threads_and_async_loads(study, tmp_path, runner):
    other = Study(tmp_path / "other")
    other.run("make", "double", "total", runner=runner)
    for name in ("raw_table", "doubled", "totals"):
        ours, theirs = records.read_record(study.path(name)), records.read_record(other.path(name))
        for key in ("content", "inputs", "parameters", "settings", "node", "pipeline"):
            assert ours[key] == theirs[key], (name, key)


def test_the_parallel_runner_is_refused_before_anything_runs(tmp_path):
    # Its worker processes run the nodes and save the outputs with copies of the hook, which
    # cannot follow what in-memory datasets were computed from: records would lose inputs.
    study = Study(tmp_path)
    with pytest.raises(UnsupportedRunnerError, match="ParallelRunner.*ThreadRunner"):
        study.run("make", "double", runner=ParallelRunner())
    assert not (tmp_path / "data" / "raw_table.parquet").exists()
    assert not list((tmp_path / "data" / ".locks" / "toy").glob("*.lock"))


def test_a_stale_input_is_refused_naming_it_and_the_command(study):
    study.run("make", seed=5)  # raw_table rewritten; doubled still computed from the old one
    with pytest.raises(StaleInputError) as caught:
        study.run("total", seed=5)
    message = str(caught.value)
    assert f"doubled ({study.shown('doubled')})" in message
    assert "stale: it was computed from another raw_table" in message
    assert "kedro run --env toy --pipelines double,total --params seed=5" in message
    study.run("double", "total", seed=5)  # refreshed: used again


def test_an_input_made_with_other_parameters_is_refused(study):
    with pytest.raises(
        StaleInputError, match=r"doubled .* other parameters .*factor: 2 then, 3 now"
    ):
        study.run("total", factor=3)
    study.run("total", executor="dask")  # a runtime-only parameter changes nothing


def test_a_damaged_or_unrecorded_input_is_refused(study):
    path = study.folder / "data" / "doubled.parquet"
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))
    with pytest.raises(StaleInputError, match=r"doubled .* is not what its pipeline wrote"):
        study.run("total")
    records.record_path(path).unlink()
    with pytest.raises(StaleInputError, match=r"doubled .* has no lineage record"):
        study.run("total")


def test_partitions_are_checked_as_they_are_loaded(study):
    parts = study.folder / "data" / "parts"
    parts.mkdir()
    for name in ("a", "b"):
        table = make(1)
        table.to_parquet(parts / f"{name}.parquet")
        records.write_record(
            parts / f"{name}.parquet",
            {
                "format": records.RECORD_FORMAT,
                "content": digests.content_digest(parts / f"{name}.parquet"),
                "inputs": {},
            },
        )
    study.run("gather")
    gathered = records.read_record(study.path("gathered"))
    assert set(gathered["inputs"]) == {"all_tables/a", "all_tables/b"}
    make(7).to_parquet(parts / "b.parquet")
    with pytest.raises(StaleInputError, match=r"all_tables/b .*b\.parquet.* is not what"):
        study.run("gather")


def test_outputs_of_other_study_settings_are_not_replaced_unasked(study):
    totals = study.folder / "data" / "totals.parquet"
    before = os.stat(totals).st_mtime_ns
    with pytest.raises(OutputsWouldBeReplacedError) as caught:
        study.run("total", max_images_per_class=5)
    message = str(caught.value)
    assert "max_images_per_class=5" in message and "replace_outputs=true" in message
    assert "totals (data/totals.parquet): made with max_images_per_class=3" in message
    assert os.stat(totals).st_mtime_ns == before  # nothing written
    assert not list((study.folder / "data" / ".locks" / "toy").glob("*.lock"))  # released
    study.run("total", max_images_per_class=5, replace_outputs=True)
    assert json.loads(records.record_path(totals).read_text())["settings"] == {
        "max_images_per_class": 5
    }
