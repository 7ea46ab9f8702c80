"""Partial runs on stale outputs, a run with other settings and a second run at once, through
Kedro's session on a tiny study (issue 27, findings 2 and 3; the lineage hook).

Each case went through before issue 27: `--pipelines ingestion,dks` after an image was replaced
gave the old image's DKS; `ingestion,transfer` after an image was added logged it as "rejected
at extraction"; `reporting` mixed two image indexes; a second run with another
`max_images_per_class` rewrote the first's index; a flipped byte in dks.parquet was read.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from builders.tiny_study import RAW_DIR, RUNTIME_PARAMS, session_run, tiny_study, write_image

from cnn_feature_behavior.extraction.folder_lock import FolderLockedError
from cnn_feature_behavior.lineage import digests, records
from cnn_feature_behavior.lineage.hooks import OutputsWouldBeReplacedError, StaleInputError

EMBEDDING = "data/04_feature/tiny/digits/embedding"
INDEX = "data/02_intermediate/digits/image_index.parquet"


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """The whole tiny study, run once; each test works on a copy of its project."""
    import os

    project = tiny_study(tmp_path_factory.mktemp("tiny") / "project")
    here = os.getcwd()
    os.chdir(project)
    try:
        session_run(project)
    finally:
        os.chdir(here)
    return project


@pytest.fixture
def project(studied, tmp_path, monkeypatch):
    """A copy of the studied project (links kept: data/06_models), the working directory."""
    copy = tmp_path / "project"
    shutil.copytree(studied, copy, symlinks=True)
    monkeypatch.chdir(copy)
    return copy


@pytest.mark.slow
def test_partial_runs_refuse_an_embedding_of_other_images(project):
    time.sleep(0.01)
    write_image(project / RAW_DIR / "a" / "001.png", np.random.default_rng(9), 2)  # replaced
    with pytest.raises(StaleInputError) as caught:
        session_run(project, "ingestion", "dks")
    message = str(caught.value)
    assert f"embedding ({EMBEDDING}) is stale: it was computed from another image_index" in message
    assert "kedro run --env digits --pipelines feature_extraction,dks --params raw_dir=" in message
    write_image(project / RAW_DIR / "b" / "999.png", np.random.default_rng(8), 1)  # added
    with pytest.raises(StaleInputError, match=rf"embedding \({EMBEDDING}\) is stale") as caught:
        session_run(project, "ingestion", "transfer")
    assert "--pipelines feature_extraction,dks,calibration,transfer" in str(caught.value)
    with pytest.raises(StaleInputError, match=rf"embedding \({EMBEDDING}\) is stale"):
        session_run(project, "reporting")
    session_run(project, "feature_extraction", "dks")  # refreshed: used again
    session_run(project, "calibration")


@pytest.mark.slow
def test_a_flipped_byte_in_the_dks_output_is_named(project):
    dks = project / "data/07_model_output/tiny/digits/dks.parquet"
    content = bytearray(dks.read_bytes())
    content[len(content) // 2] ^= 0x10
    dks.write_bytes(bytes(content))
    with pytest.raises(StaleInputError) as caught:
        session_run(project, "calibration")
    message = str(caught.value)
    assert "dks (data/07_model_output/tiny/digits/dks.parquet) is not what its pipeline" in message
    assert "kedro run --env digits --pipelines dks,calibration" in message


@pytest.mark.slow
def test_a_run_with_other_settings_refuses_to_replace_the_outputs(project):
    before = (project / INDEX).stat().st_mtime_ns
    with pytest.raises(OutputsWouldBeReplacedError) as caught:
        session_run(project, max_images_per_class=3)
    message = str(caught.value)
    assert f"image_index ({INDEX}): made with max_images_per_class=null" in message
    assert "--params replace_outputs=true" in message
    assert (project / INDEX).stat().st_mtime_ns == before
    session_run(project, "ingestion", max_images_per_class=3, replace_outputs=True)
    with pytest.raises(StaleInputError, match=rf"embedding \({EMBEDDING}\) is stale"):
        session_run(project, "dks", max_images_per_class=3, replace_outputs=True)


@pytest.mark.slow
def test_a_second_run_of_the_dataset_and_model_stops_at_once_and_writes_nothing(project):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from cnn_feature_behavior.lineage.run_lock import run_locks\n"
            "with run_locks(Path(sys.argv[1]), 'digits', 'tiny', True):\n"
            "    print('held', flush=True); time.sleep(120)\n",
            str(project / "data" / ".locks"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = (project / INDEX).stat().st_mtime_ns
        started = time.monotonic()
        with pytest.raises(
            FolderLockedError, match=f"digits x tiny is in use by process {holder.pid}"
        ):
            session_run(project, max_images_per_class=3)
        assert (project / INDEX).stat().st_mtime_ns == before
        assert time.monotonic() - started < 60  # refused at once, not after waiting
    finally:
        holder.kill()
        holder.wait()


def _saved_outputs(project):
    """{output name: path relative to the project} of every pipeline of the study (no list: the
    registry's pipelines and the catalog's datasets with a `filepath` or `path`)."""
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from cnn_feature_behavior.pipeline_registry import STUDY_ORDER

    bootstrap_project(project)
    with KedroSession.create(
        project_path=project, env="digits", runtime_params=RUNTIME_PARAMS
    ) as s:
        catalog = s.load_context().catalog
    found = {}
    for name in STUDY_ORDER:
        for output in pipelines[name].all_outputs():
            dataset = catalog.get(output)  # None: a default MemoryDataset
            described = dataset._describe() if dataset is not None else {}  # noqa: SLF001
            location = described.get("filepath") or described.get("path")
            if location:
                found[output] = Path(location).resolve().relative_to(project.resolve())
    return found


@pytest.mark.slow
def test_every_saved_output_of_the_study_has_its_own_record(studied):
    # The hook takes no list: the pipelines merged later (retrieval, few_shot, the report parts)
    # are covered by being registered. The reports' figures and tables are written as files into
    # one folder by three datasets: each file gets its record, naming the dataset that wrote it
    # (a record of the folder would be one for three, overwritten twice).
    outputs = _saved_outputs(studied)
    assert {"retrieval_scores", "few_shot_results", "dataset_report_html"} <= set(outputs)
    report = Path("data/08_reporting/tiny/digits")
    assert {n for n, p in outputs.items() if p == report} == {
        "dataset_report_figures",
        "dataset_report_tables_csv",
        "dataset_report_tables_md",
    }
    for name, path in outputs.items():
        if (studied / path).is_dir() and name != "embedding":
            continue
        record = records.read_record(studied / path)
        assert record is not None, f"{name} ({path}) has no record"
        assert record["dataset"] == name
    assert records.read_record(studied / report) is None
    written = {"table_2_dataset_properties.csv": "dataset_report_tables_csv"}
    written |= {"table_2_dataset_properties.md": "dataset_report_tables_md"}
    written |= {f.name: "dataset_report_figures" for f in (studied / report).glob("*.png")}
    assert len(written) > 3
    for file_name, name in written.items():
        record = records.read_record(studied / report / file_name)
        assert record is not None, f"{file_name} has no record"
        assert record["dataset"] == name and record["path"] == f"{report}/{file_name}"
        assert record["content"] == digests.content_digest(studied / report / file_name)
