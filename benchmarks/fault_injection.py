"""Fault injection: real `kedro run`s of the whole study on caltech101-mini (1 crop), each result
compared with a clean run bit for bit (issue 16, "The proof"; issue 27).

Every fault is injected into real runs of the whole study (STUDY_ORDER: ingestion,
feature_extraction, dks, calibration, transfer, retrieval, few_shot, reporting) in a temporary
copy of the project (tests/builders/project.py), on a temporary copy of a subset of
`../shared/datasets/caltech101-mini` (so that files can be replaced, added or hidden; the real
data/ and the shared datasets are never touched). After the fault the run is repeated, or a
partial run (`--pipelines ...`) is made, or the faulty run's own outcome is taken, and classified:

- `identical`: the run succeeded and every result (every Parquet table, every embedding row, the
  reports' CSV tables) equals the clean run's, bit for bit;
- `clear error naming the file`: the run stopped with an error that names the file (or folder,
  or lock holder, or stale output) at fault;
- `rejected with reason`: a hostile file is a reject with its reason, and every other result
  equals the clean run's (counted with `identical`);
- `UNCLEAR ERROR`: the run stopped with an error that does not name the file at fault;
- `SILENT DIFFERENCE`: the run succeeded and a result differs (the failure this script exists
  to find).

One line per fault, then exactly
`RESULT faults=<n> identical=<n> clear_errors=<n> unclear_errors=<n> silent_differences=<n>`.
The exit status is 1 when any fault gives a silent difference or an unclear error.

    python benchmarks/fault_injection.py --kills 20 --images-per-class 3 --shard-size 4
    python benchmarks/fault_injection.py --kills 1 --classes 2 --images-per-class 3 \
        --faults kill,truncated_shard,plan_garbled,hostile_images   # the CI form's size

Kill moments are drawn with `--seed`, alternately, uniformly over the extraction window measured on
the clean run's log (outputs removed from the extraction on before each such kill) and over the
statistics window of a run that finds the clean embedding complete (only the statistics' outputs
on removed: the kill and the rerun then cost no extraction).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from builders.project import SHARED_DATASETS, make_project_copy  # noqa: E402

from cnn_feature_behavior.pipeline_registry import STUDY_ORDER  # noqa: E402

DATASET = "caltech101"
# The whole study, as `kedro run` with no --pipelines runs it.
PIPELINES = ",".join(STUDY_ORDER)
# What reads dks.parquet, up to the reports.
AFTER_DKS = ",".join(STUDY_ORDER[STUDY_ORDER.index("calibration") :])
RESULT_DIRS = (
    "data/02_intermediate",
    "data/03_primary",
    "data/04_feature",
    "data/05_model_input",
    "data/07_model_output",
    "data/08_reporting",
)
# The outputs from extraction on (a kill during extraction removes them before its run).
FROM_EXTRACTION = (
    "data/04_feature",
    "data/05_model_input",
    "data/07_model_output",
    "data/08_reporting",
)
FROM_STATISTICS = ("data/05_model_input", "data/07_model_output", "data/08_reporting")
# Columns that measure how long a step took (retrieval_scores' `seconds`, docs/data_contracts.md):
# no two runs agree on them, and no result is computed from them.
TIMINGS = frozenset({"seconds"})
IDENTICAL, CLEAR, REJECTED = "identical", "clear error naming the file", "rejected with reason"
SILENT, UNCLEAR, SKIPPED = "SILENT DIFFERENCE", "UNCLEAR ERROR", "SKIPPED"
ALL_FAULTS = (
    "kill",
    "dask_worker_extraction",
    "dask_worker_statistics",
    "truncated_shard",
    "foreign_shard",
    "plan_garbled",
    "flipped_shard_byte",
    "flipped_dks_byte",
    "replaced_image",
    "link_after_ingestion",
    "stale_partial_runs",
    "blind_worker",
    "second_run",
    "second_run_other_params",
    "hostile_images",
)
# Small enough for the reports' top-feature patches to take seconds, the same in every run.
STUDY_PARAMS = {"reporting.feature_visualisation.max_pool_images": 8}


@dataclass(frozen=True)
class Settings:
    kills: int
    classes: int | None
    images_per_class: int | None
    shard_size: int
    source_model: str
    run_timeout_s: float
    seed: int
    faults: tuple[str, ...]
    keep: bool
    pipelines: str = PIPELINES


@dataclass
class Run:
    """A finished (or killed) `kedro run`: exit status, output lines with their times."""

    returncode: int
    lines: list[tuple[float, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    @property
    def error_text(self) -> str:
        """The end of the output, where a failed run's error and traceback are."""
        return "\n".join(line for _, line in self.lines[-120:])

    def when(self, needle: str) -> float | None:
        """Seconds from the start to the first line containing `needle`."""
        return next((t for t, line in self.lines if needle in line), None)


@dataclass(frozen=True)
class Outcome:
    fault: str
    outcome: str
    detail: str


# ---------------------------------------------------------------------------------------------
# Runs


class Lab:
    """Temporary raw_dir copies and project copies, and `kedro run`s in them."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.source = SHARED_DATASETS / "caltech101-mini" / "101_ObjectCategories"
        self.runs = 0

    def raw_copy(self, name: str) -> Path:
        """A writable copy of the chosen subset of caltech101-mini (BACKGROUND_Google left out)."""
        raw_dir = self.root / name
        classes = sorted(p.name for p in self.source.iterdir() if p.name != "BACKGROUND_Google")
        for class_name in classes[: self.settings.classes]:
            files = sorted((self.source / class_name).iterdir())[: self.settings.images_per_class]
            target = raw_dir / "101_ObjectCategories" / class_name
            target.mkdir(parents=True)
            for file in files:
                shutil.copy2(file, target / file.name)
        return raw_dir

    def project(self, name: str) -> Path:
        return make_project_copy(self.root / name)

    def command(
        self,
        raw_dir: Path,
        params: dict[str, object] | None = None,
        pipelines: str | None = None,
    ) -> list[str]:
        values = {
            "raw_dir": raw_dir,
            "crops": 1,
            "source_model": self.settings.source_model,
            "feature_extraction.shard_size": self.settings.shard_size,
            **STUDY_PARAMS,
            **(params or {}),
        }
        joined = ",".join(f"{k}={v}" for k, v in values.items())
        return [sys.executable, "-m", "kedro", "run", "--env", DATASET] + [
            "--pipelines",
            pipelines or self.settings.pipelines,
            "--params",
            joined,
        ]

    def start(
        self,
        project: Path,
        raw_dir: Path,
        params: dict[str, object] | None = None,
        pipelines: str | None = None,
    ) -> tuple[subprocess.Popen, Run, threading.Thread]:
        """Start a run; its output lines are collected with their times by a thread."""
        # conf/logging.yml logs whole lines; COLUMNS keeps them whole under a Rich configuration.
        env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "COLUMNS": "400"}
        process = subprocess.Popen(
            self.command(raw_dir, params, pipelines),
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="backslashreplace",
            start_new_session=True,  # its Dask workers can be killed with it
        )
        run = Run(returncode=-1)
        started = time.monotonic()

        def collect() -> None:
            for line in process.stdout:
                run.lines.append((time.monotonic() - started, line.rstrip("\n")))

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        return process, run, reader

    def finish(self, process: subprocess.Popen, run: Run, reader: threading.Thread) -> Run:
        try:
            run.returncode = process.wait(timeout=self.settings.run_timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(process)
            run.returncode = process.wait()
            run.lines.append(
                (0.0, f"fault_injection: run timed out after {self.settings.run_timeout_s} s")
            )
        reader.join(timeout=10)
        self.runs += 1
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        (logs / f"run-{self.runs:03d}.log").write_text(run.text, errors="backslashreplace")
        return run

    def run(
        self,
        project: Path,
        raw_dir: Path,
        params: dict[str, object] | None = None,
        pipelines: str | None = None,
    ) -> Run:
        return self.finish(*self.start(project, raw_dir, params, pipelines))


def kill_group(process: subprocess.Popen) -> None:
    """kill -9 the run and every process it started (its Dask workers)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(run: Run, needle: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if run.when(needle) is not None:
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------------
# Results and their comparison


def results(project: Path) -> dict[str, pd.DataFrame]:
    """Every result table of a run: each Parquet file, each embedding as its shards in order, and
    the reports' CSV tables (the figures are pictures of these)."""
    found: dict[str, pd.DataFrame] = {}
    for folder in RESULT_DIRS:
        for path in sorted((project / folder).rglob("*")):
            name = path.relative_to(project).as_posix()
            if path.is_dir() and path.name == "embedding":
                shards = sorted(path.glob("shard-*.parquet"))
                tables = [pq.read_table(shard).to_pandas() for shard in shards]
                found[name] = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
            elif path.suffix == ".parquet" and "/embedding/" not in name:
                found[name] = pd.read_parquet(path)
            elif path.suffix == ".csv" and folder == "data/08_reporting":
                found[name] = pd.read_csv(path)
    return found


def same_values(x: np.ndarray, y: np.ndarray) -> bool:
    """Equal bit for bit (floats compared as their bytes, so NaN == NaN and -0.0 != 0.0)."""
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype.kind in "fiub":
        return x.tobytes() == y.tobytes()
    return [repr(v) for v in x] == [repr(v) for v in y]


def same_frame(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Equal bit for bit, the measured durations (TIMINGS) aside."""
    if list(a.columns) != list(b.columns) or a.shape != b.shape:
        return False
    compared = [c for c in a.columns if c not in TIMINGS]
    return all(same_values(a[c].to_numpy(), b[c].to_numpy()) for c in compared)


def differences(
    clean: dict[str, pd.DataFrame], other: dict[str, pd.DataFrame], ignore: Callable[[str], bool]
) -> list[str]:
    """Names of the results that differ (or exist in one run only), those `ignore`d left out."""
    names = sorted(set(clean) | set(other))
    return [
        n
        for n in names
        if not ignore(n)
        and (n not in clean or n not in other or not same_frame(clean[n], other[n]))
    ]


def nothing(name: str) -> bool:
    return False


def error_line(run: Run) -> str:
    """The run's most telling error line (the last one naming an exception), shortened."""
    candidates = [line for _, line in run.lines if "Error" in line or "error" in line]
    # Kedro wraps a node's error in a DatasetError that names the dataset, not the cause.
    causes = [line for line in candidates if not line.lstrip().startswith("DatasetError")]
    candidates = causes or candidates
    line = candidates[-1] if candidates else (run.lines[-1][1] if run.lines else "(no output)")
    return " ".join(line.split())[:240]


def judge(
    fault: str,
    run: Run,
    clean: dict[str, pd.DataFrame],
    project: Path,
    names: Sequence[str],
    ignore: Callable[[str], bool] = nothing,
) -> Outcome:
    """The outcome of a run after a fault: identical results, or an error naming one of `names`
    (an error that names none of them is unclear)."""
    if run.returncode != 0:
        return judge_error(fault, run, names)
    diffs = differences(clean, results(project), ignore)
    if diffs:
        return Outcome(fault, SILENT, "differs: " + ", ".join(diffs))
    return Outcome(fault, IDENTICAL, "run succeeded, every result equal to the clean run's")


def judge_error(fault: str, run: Run, names: Sequence[str]) -> Outcome:
    """A run that had to stop: clear when its error names one of `names`."""
    detail = f"exit {run.returncode}: {error_line(run)}"
    if run.returncode == 0:
        return Outcome(fault, SILENT, "the run succeeded although it had to stop")
    named = [n for n in names if n and n in run.error_text]
    return Outcome(fault, CLEAR if named else UNCLEAR, detail)


def flip_byte(path: Path, offset: int) -> None:
    content = bytearray(path.read_bytes())
    content[offset] ^= 0xFF
    path.write_bytes(bytes(content))


def last_byte_of_column(path: Path, column: int) -> int:
    """Offset of the last byte of one column chunk of a Parquet file (its data page's values)."""
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(column)
    return chunk.data_page_offset + chunk.total_compressed_size - 1


def footer_byte(path: Path) -> int:
    """Offset of a byte in the middle of a Parquet file's footer (its metadata)."""
    size = path.stat().st_size
    footer_length = int.from_bytes(path.read_bytes()[-8:-4], "little")
    return size - 8 - footer_length // 2


# ---------------------------------------------------------------------------------------------
# Faults


class Faults:
    """The clean run, then each fault against it."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.rng = random.Random(lab.settings.seed)
        self.raw_dir = lab.raw_copy("raw")
        self.clean_project = lab.project("clean")
        started = time.monotonic()
        self.clean_run = lab.run(self.clean_project, self.raw_dir)
        self.clean_seconds = time.monotonic() - started
        if self.clean_run.returncode != 0:
            raise SystemExit(f"the clean run failed:\n{self.clean_run.text[-5000:]}")
        self.clean = results(self.clean_project)
        self.extraction = self._window(self.clean_run, "extract_embedding")
        self.statistics = self._window(self.clean_run, "compute_statistics")

    @staticmethod
    def _window(run: Run, node: str) -> tuple[float, float]:
        """From the start of `node` to the start of the next node."""
        start = run.when(f"Running node: {node}")
        if start is None:
            raise SystemExit(f"no 'Running node: {node}' in the run's log")
        later = [t for t, line in run.lines if t > start and "Running node:" in line]
        return start, later[0] if later else run.lines[-1][0]

    def copy_of_clean(self, name: str) -> Path:
        """A project copy holding the clean run's outputs (and their lineage records)."""
        project = self.lab.project(name)
        for folder in RESULT_DIRS:
            shutil.copytree(self.clean_project / folder, project / folder, dirs_exist_ok=True)
        return project

    def embedding(self, project: Path) -> Path:
        return (
            project / "data" / "04_feature" / self.lab.settings.source_model / DATASET / "embedding"
        )

    def model_output(self, project: Path) -> Path:
        return project / "data" / "07_model_output" / self.lab.settings.source_model / DATASET

    def index(self) -> pd.DataFrame:
        return self.clean[f"data/02_intermediate/{DATASET}/image_index.parquet"]

    # -- kill -9 of `kedro run`, then a rerun

    def kills(self) -> list[Outcome]:
        """kill -9 at moments drawn alternately over the extraction and the statistics."""
        project = self.lab.project("kills")
        resumed = self._statistics_window(project)
        outcomes = []
        for number in range(self.lab.settings.kills):
            during_extraction = number % 2 == 0
            window = self.extraction if during_extraction else resumed
            moment = self.rng.uniform(*window)
            self._reset(project, keep_embedding=not during_extraction)
            process, run, reader = self.lab.start(project, self.raw_dir)
            time.sleep(moment)
            kill_group(process)
            self.lab.finish(process, run, reader)
            rerun = self.lab.run(project, self.raw_dir)
            phase = "extraction" if during_extraction else "statistics"
            outcome = judge(f"kill -9 at {moment:.1f} s ({phase})", rerun, self.clean, project, [])
            outcomes.append(outcome)
            print_outcome(outcome)
        return outcomes

    def _reset(self, project: Path, keep_embedding: bool) -> None:
        """Outputs removed from the statistics on, and from the extraction on unless kept (then
        the clean run's embedding is put back: only the statistics are left to compute)."""
        for folder in FROM_EXTRACTION:
            shutil.rmtree(project / folder, ignore_errors=True)
        if keep_embedding:
            shutil.copytree(self.clean_project / "data/04_feature", project / "data/04_feature")

    def _statistics_window(self, project: Path) -> tuple[float, float]:
        """The statistics' window in a run that finds the embedding complete (kills during the
        statistics then cost no extraction): measured on one such run, itself checked."""
        if self.lab.settings.kills < 2:
            return self.statistics
        self._reset(project, keep_embedding=True)
        run = self.lab.run(project, self.raw_dir)
        outcome = judge("statistics only", run, self.clean, project, [])
        if outcome.outcome != IDENTICAL or run.when("Running node: compute_statistics") is None:
            raise SystemExit(f"the run on the clean embedding failed: {outcome.detail}")
        return self._window(run, "compute_statistics")

    # -- a Dask worker killed

    def _dask_params(self) -> dict[str, object]:
        return {"executor": "dask", "dask.n_workers": 2, "dask.threads_per_worker": 1}

    def dask_worker(self, during: str) -> Outcome:
        project = self.lab.project(f"dask_{during}")
        if during == "statistics":
            shutil.copytree(
                self.clean_project / "data/04_feature",
                project / "data/04_feature",
                dirs_exist_ok=True,
            )
            shutil.copytree(
                self.clean_project / "data/02_intermediate",
                project / "data/02_intermediate",
                dirs_exist_ok=True,
            )
        process, run, reader = self.lab.start(project, self.raw_dir, self._dask_params())
        needle = "extract_embedding" if during == "extraction" else "compute_statistics"
        killed = None
        if wait_for(run, f"Running node: {needle}", self.lab.settings.run_timeout_s):
            if during == "extraction":
                self._wait_for_shard(project, process)
            # The statistics of a small subset take a few seconds: the first worker found dies.
            deadline = time.monotonic() + 10.0
            while killed is None and process.poll() is None and time.monotonic() < deadline:
                killed = kill_one_worker(process)
                time.sleep(0.05)
        run = self.lab.finish(process, run, reader)
        outcome = judge(f"Dask worker killed during {during}", run, self.clean, project, [])
        if killed is None:  # not injected: the harness missed the moment, not a finding
            return Outcome(outcome.fault, SKIPPED, "no worker found to kill; " + outcome.detail)
        return Outcome(outcome.fault, outcome.outcome, f"pid {killed}; {outcome.detail}")

    def _wait_for_shard(self, project: Path, process: subprocess.Popen) -> None:
        """Until a shard (or a partial one) exists: the workers are computing."""
        deadline = time.monotonic() + self.lab.settings.run_timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            folder = self.embedding(project)
            if folder.is_dir() and any(p.name.startswith("shard-") for p in folder.iterdir()):
                return
            time.sleep(0.1)

    # -- damaged store: truncated, foreign, garbled plan, flipped bytes

    def store_fault(self, fault: str) -> Outcome:
        project = self.copy_of_clean(fault)
        folder = self.embedding(project)
        shards = sorted(folder.glob("shard-*.parquet"))
        target = shards[len(shards) // 2]
        if fault == "truncated_shard":
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 2])
            names, label = [target.name], f"shard truncated ({target.name})"
        elif fault == "foreign_shard":
            target = shards[0]
            shutil.copy(self.foreign_shard(), target)
            names, label = [target.name], f"shard from another configuration ({target.name})"
        elif fault == "flipped_shard_data":
            flip_byte(target, last_byte_of_column(target, 1 + self.rng.randrange(8)))
            names, label = [target.name], f"a byte flipped in a shard's data ({target.name})"
        elif fault == "flipped_shard_footer":
            flip_byte(target, footer_byte(target))
            names, label = [target.name], f"a byte flipped in a shard's footer ({target.name})"
        else:
            (folder / "plan.json").write_bytes(b'{"fingerprint": "\x00garbled')
            names, label = ["plan.json"], "plan.json garbled"
        run = self.lab.run(project, self.raw_dir)
        return judge(label, run, self.clean, project, names)

    def flipped_shard_byte(self) -> list[Outcome]:
        return [self.store_fault("flipped_shard_data"), self.store_fault("flipped_shard_footer")]

    def flipped_dks_byte(self) -> list[Outcome]:
        """A byte of dks.parquet flipped: a run that reads it names it; a run that computes it
        again gives the clean results."""
        if self.lab.settings.pipelines != PIPELINES:
            return [Outcome("a byte flipped in dks.parquet", SKIPPED, "needs the whole study")]
        outcomes = []
        for pipelines in (AFTER_DKS, PIPELINES):
            project = self.copy_of_clean(f"flipped_dks_{len(outcomes)}")
            target = self.model_output(project) / "dks.parquet"
            flip_byte(target, last_byte_of_column(target, 2))
            run = self.lab.run(project, self.raw_dir, pipelines=pipelines)
            fault = f"a byte flipped in dks.parquet, then --pipelines {pipelines}"
            if pipelines == PIPELINES:
                outcomes.append(judge(fault, run, self.clean, project, []))
            else:
                outcomes.append(judge_error(fault, run, [str(target.relative_to(project))]))
        return outcomes

    def foreign_shard(self) -> Path:
        """The first shard of an embedding of the same images at another resize (256 -> 240)."""
        project = self.lab.project("foreign")
        command = self.lab.command(
            self.raw_dir, {"feature_extraction.resize": 240}, "ingestion,feature_extraction"
        )
        process = subprocess.run(
            command,
            cwd=project,
            capture_output=True,
            text=True,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
            timeout=self.lab.settings.run_timeout_s,
        )
        if process.returncode != 0:
            raise SystemExit(f"the other configuration's run failed:\n{process.stdout[-3000:]}")
        return sorted(self.embedding(project).glob("shard-*.parquet"))[0]

    # -- an image replaced at the same path

    def replaced_image(self) -> Outcome:
        """Its row changes (to the donor image's), every other row stays, and every result
        equals a run from scratch on the changed files."""
        project = self.copy_of_clean("replaced")
        index = self.index()
        target, donor = index["path"].iloc[1], index["path"].iloc[-1]
        fault = f"image replaced at the same path ({target})"
        with self._changed_raw_dir() as raw:
            time.sleep(0.01)  # a new modification time, as a real replacement has
            shutil.copyfile(raw / donor, raw / target)
            run = self.lab.run(project, raw)
            if run.returncode != 0:
                return judge_error(fault, run, [])
            scratch = self.lab.project("replaced_scratch")
            reference = self.lab.run(scratch, raw)
        if reference.returncode != 0:
            return Outcome(fault, UNCLEAR, f"the run from scratch failed: {error_line(reference)}")
        found = results(project)
        versus_scratch = differences(results(scratch), found, nothing)
        if versus_scratch:
            return Outcome(
                fault, SILENT, "differs from a run from scratch: " + ", ".join(versus_scratch)
            )
        return self._judge_replaced_row(fault, found, index, target, donor)

    def _judge_replaced_row(
        self,
        fault: str,
        found: dict[str, pd.DataFrame],
        index: pd.DataFrame,
        target: str,
        donor: str,
    ) -> Outcome:
        name = next(n for n in self.clean if n.endswith("embedding"))
        before, after = self.clean[name], found[name]
        ids = dict(zip(index["path"], index["image_id"]))
        row = before.index[before["image_id"] == ids[target]][0]
        donor_row = before.index[before["image_id"] == ids[donor]][0]
        features = [c for c in before.columns if c != "image_id"]
        rest_same = same_frame(
            before.drop(index=row).reset_index(drop=True),
            after.drop(index=row).reset_index(drop=True),
        )
        as_donor = same_values(
            before.loc[donor_row, features].to_numpy(), after.loc[row, features].to_numpy()
        )
        if not rest_same or not as_donor:
            what = "other rows changed" if not rest_same else "its row is not the donor's"
            return Outcome(fault, SILENT, what)
        return Outcome(
            fault,
            IDENTICAL,
            "its row now equals the donor image's, every other row unchanged, every result "
            "equal to a run from scratch on the changed files",
        )

    def _changed_raw_dir(self):
        """raw_dir changed for a fault and put back afterwards (the original bytes and times)."""
        lab = self.lab
        raw = self.raw_dir

        class Changed:
            def __enter__(self) -> Path:
                self.backup = lab.root / f"raw_backup_{time.monotonic_ns()}"
                shutil.copytree(raw, self.backup, symlinks=True)
                return raw

            def __exit__(self, *exc: object) -> None:
                shutil.rmtree(raw)
                shutil.copytree(self.backup, raw, symlinks=True)
                shutil.rmtree(self.backup)

        return Changed()

    # -- a file swapped for a link out of raw_dir after ingestion (same size and time)

    def link_after_ingestion(self) -> Outcome:
        """The link passes the index's check of sizes and times, so only the link rule can
        refuse it: the image is an extraction reject, its reason saying where the link leads."""
        project = self.copy_of_clean("link")
        for folder in FROM_EXTRACTION:  # extraction from scratch: every image is opened
            shutil.rmtree(project / folder, ignore_errors=True)
        target = self.index()["path"].iloc[2]
        outside = self.lab.root / "outside"
        outside.mkdir(exist_ok=True)
        fault = f"an image swapped for a link out of raw_dir after ingestion ({target})"
        with self._changed_raw_dir() as raw:
            # Another image's bytes, given the target's size and modification time: the link
            # passes the index's identity check, so the link rule alone can refuse it.
            donor = raw / self.index()["path"].iloc[-1]
            stolen = outside / "secret.jpg"
            shutil.copyfile(donor, stolen)
            with open(stolen, "ab") as file:
                file.truncate((raw / target).stat().st_size)
            stat = (raw / target).stat()
            os.utime(stolen, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            (raw / target).unlink()
            (raw / target).symlink_to(stolen)
            run = self.lab.run(project, raw, pipelines="feature_extraction,dks")
        if run.returncode != 0:
            return judge_error(fault, run, [target, str(stolen)])
        rejects = results(project)[
            f"data/04_feature/{self.lab.settings.source_model}/{DATASET}/extraction_rejects.parquet"
        ]
        reasons = dict(zip(rejects["path"], rejects["reason"]))
        reason = next((r for p, r in reasons.items() if p.endswith(target)), "")
        if "outside raw_dir" in reason:
            return Outcome(fault, REJECTED, f"{target}: {reason}")
        return Outcome(fault, SILENT, f"{target} embedded although it leads out of raw_dir")

    # -- partial runs on stale outputs

    def stale_partial_runs(self) -> list[Outcome]:
        """After the images change, a partial run that reads an output computed from the old
        ones names it: dks after a replaced image, transfer after an added one, reporting after
        a re-ingestion."""
        if self.lab.settings.pipelines != PIPELINES:
            return [Outcome("stale partial runs", SKIPPED, "need the whole study")]
        index = self.index()
        outcomes = []
        embedding = str(self.embedding(Path(".")).relative_to(Path(".")))
        names = [embedding, "embedding"]
        with self._changed_raw_dir() as raw:
            project = self.copy_of_clean("stale_dks")
            time.sleep(0.01)
            shutil.copyfile(raw / index["path"].iloc[-1], raw / index["path"].iloc[0])
            run = self.lab.run(project, raw, pipelines="ingestion,dks")
            outcomes.append(
                judge_error("image replaced, then --pipelines ingestion,dks", run, names)
            )
        with self._changed_raw_dir() as raw:
            project = self.copy_of_clean("stale_transfer")
            first = raw / index["path"].iloc[0]
            shutil.copyfile(first, first.with_name("image_9999.jpg"))
            run = self.lab.run(project, raw, pipelines="ingestion,transfer")
            outcomes.append(
                judge_error("image added, then --pipelines ingestion,transfer", run, names)
            )
            project = self.copy_of_clean("stale_reporting")
            ingested = self.lab.run(project, raw, pipelines="ingestion")
            run = self.lab.run(project, raw, pipelines="reporting")
            fault = "image added, --pipelines ingestion, then --pipelines reporting"
            if ingested.returncode != 0:
                outcomes.append(
                    Outcome(fault, UNCLEAR, f"ingestion failed: {error_line(ingested)}")
                )
            else:
                outcomes.append(judge_error(fault, run, names))
        return outcomes

    # -- a Dask worker that cannot see raw_dir

    def blind_worker(self) -> Outcome:
        """A scheduler and one worker in a mount namespace where raw_dir is an empty folder."""
        fault = "Dask worker that cannot see raw_dir"
        if shutil.which("unshare") is None or os.geteuid() != 0:
            return Outcome(fault, SKIPPED, "needs root and unshare to hide raw_dir from a worker")
        project = self.lab.project("blind")
        empty = self.lab.root / "empty"
        empty.mkdir(exist_ok=True)
        port = free_port()
        address = f"tcp://127.0.0.1:{port}"
        python = sys.executable
        scheduler = subprocess.Popen(
            [
                python,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                ":0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        hide = f"mount --bind {empty} {self.raw_dir}"
        worker_cmd = (
            f"exec {python} -m distributed.cli.dask_worker {address} --nworkers 1 "
            "--nthreads 1 --dashboard-address :0"
        )
        worker = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"{hide} && {worker_cmd}",
            ],
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            time.sleep(5.0)
            params = {"executor": "dask", "dask.scheduler_address": address}
            run = self.lab.run(project, self.raw_dir, params, "ingestion,feature_extraction")
        finally:
            for process in (worker, scheduler):
                kill_group(process)
                process.wait()
        return judge_error(fault, run, [str(self.raw_dir), "raw_dir"])

    # -- a second `kedro run` on the same dataset and model, with the same or other settings

    def second_run(self, params: dict[str, object] | None = None) -> list[Outcome]:
        """A second run started once the first holds its lock: it stops at once, naming the
        lock's holder, and the first's results equal the clean run's. With other settings, once
        the first has finished, it stops again before writing anything, naming the outputs it
        would replace."""
        label = "second kedro run" + (f" with {params}" if params else "")
        project = self.lab.project("second" if not params else "second_other")
        first = self.lab.start(project, self.raw_dir)
        lock = project / "data/.locks" / DATASET / f"model-{self.lab.settings.source_model}.lock"
        deadline = time.monotonic() + self.lab.settings.run_timeout_s
        while not lock.exists() and first[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        second = self.lab.run(project, self.raw_dir, params)
        first_run = self.lab.finish(*first)
        fault = f"{label}, while the first runs"
        if first_run.returncode != 0:
            return [Outcome(fault, UNCLEAR, f"the first run failed: {error_line(first_run)}")]
        outcome = judge(fault, first_run, self.clean, project, [])
        if outcome.outcome != IDENTICAL:
            return [outcome]
        if second.returncode == 0 and not params:
            outcomes = [
                Outcome(fault, IDENTICAL, "both runs succeeded; results equal the clean run's")
            ]
        else:
            lock = judge_error(fault, second, [".lock", "in use by process"])
            outcomes = [Outcome(fault, lock.outcome, lock.detail + "; the first's results equal")]
        if params:
            again = self.lab.run(project, self.raw_dir, params)
            fault = f"{label}, after the first finished"
            refused = judge_error(fault, again, ["image_index.parquet", "replace_outputs"])
            unchanged = differences(self.clean, results(project), nothing)
            if refused.outcome == CLEAR and unchanged:
                refused = Outcome(
                    fault, SILENT, "refused, but outputs changed: " + ", ".join(unchanged)
                )
            outcomes.append(refused)
        return outcomes

    # -- hostile files in raw_dir

    def hostile_images(self) -> list[Outcome]:
        raw_dir = self.lab.raw_copy("raw_hostile")
        folder = sorted((raw_dir / "101_ObjectCategories").iterdir())[0]
        rel = f"101_ObjectCategories/{folder.name}"
        some_image = sorted(folder.iterdir())[0].read_bytes()
        from PIL import Image

        thin = self.lab.root / "thin.png"
        Image.new("RGB", (100_000, 1), (200, 10, 10)).save(thin)
        # 16-bit greyscale, 81 Mpixel: within the pixel limit, beyond the bytes to decode
        # (it cost 2 GB to check before issue 27).
        deep = self.lab.root / "deep.png"
        Image.new("I;16", (9_000, 9_000), 4_000).save(deep)
        planted = {
            "the 1 x 100,000 image": ("thin.png", thin.read_bytes(), "aspect ratio"),
            "a 16-bit image of 81 Mpixel": ("deep.png", deep.read_bytes(), "too large to decode"),
            "a 0-byte image": ("empty.jpg", b"", "empty file"),
            "a non-image file with an image extension": (
                "notes.jpg",
                b"not an image, only text\n" * 20,
                "does not decode",
            ),
            "a non-UTF-8 file name": ("caf\xe9.jpg", some_image, "not valid UTF-8"),
        }
        for name, content, _ in planted.values():
            path = os.fsencode(folder) + b"/" + name.encode("latin-1")
            with open(path, "wb") as handle:
                handle.write(content)
        project = self.lab.project("hostile")
        run = self.lab.run(project, raw_dir, pipelines="ingestion,feature_extraction,dks")
        rejects_name = "data/02_intermediate/caltech101/ingestion_rejects.parquet"
        outcomes = []
        for fault, (name, _, reason) in planted.items():
            shown = (
                f"{rel}/{os.fsencode(name.encode('latin-1')).decode('utf-8', 'backslashreplace')}"
            )
            if run.returncode != 0:
                outcomes.append(judge_error(fault, run, [shown, name]))
                continue
            found = results(project)
            rejects = dict(zip(found[rejects_name]["path"], found[rejects_name]["reason"]))
            # The hostile run computes ingestion, extraction and the statistics only.
            others = differences(
                self.clean, found, lambda n, made=set(found): n == rejects_name or n not in made
            )
            if others:
                outcomes.append(Outcome(fault, SILENT, "differs: " + ", ".join(others)))
            elif reason in rejects.get(shown, ""):
                outcomes.append(Outcome(fault, REJECTED, f"{shown}: {rejects[shown]}"))
            else:
                outcomes.append(Outcome(fault, SILENT, f"{shown} not rejected as '{reason}'"))
        return outcomes


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kill_one_worker(run_process: subprocess.Popen) -> int | None:
    """kill -9 one Dask worker process started by the run (a leaf of its process tree)."""
    import psutil

    try:
        children = psutil.Process(run_process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    workers = [
        p for p in children if not p.children() and "multiprocessing" in " ".join(p.cmdline())
    ]
    if not workers:
        return None
    victim = workers[0]
    victim.send_signal(signal.SIGKILL)
    return victim.pid


# ---------------------------------------------------------------------------------------------
# Main


def print_outcome(outcome: Outcome) -> None:
    print(f"FAULT {outcome.fault}: {outcome.outcome} | {outcome.detail}", flush=True)


def run_faults(faults: Faults, chosen: Sequence[str]) -> list[Outcome]:
    steps: dict[str, Callable[[], list[Outcome]]] = {
        "kill": faults.kills,
        "dask_worker_extraction": lambda: [faults.dask_worker("extraction")],
        "dask_worker_statistics": lambda: [faults.dask_worker("statistics")],
        "truncated_shard": lambda: [faults.store_fault("truncated_shard")],
        "foreign_shard": lambda: [faults.store_fault("foreign_shard")],
        "plan_garbled": lambda: [faults.store_fault("plan_garbled")],
        "flipped_shard_byte": faults.flipped_shard_byte,
        "flipped_dks_byte": faults.flipped_dks_byte,
        "replaced_image": lambda: [faults.replaced_image()],
        "link_after_ingestion": lambda: [faults.link_after_ingestion()],
        "stale_partial_runs": faults.stale_partial_runs,
        "blind_worker": lambda: [faults.blind_worker()],
        "second_run": faults.second_run,
        "second_run_other_params": lambda: faults.second_run({"max_images_per_class": 2}),
        "hostile_images": faults.hostile_images,
    }
    outcomes = []
    for name in chosen:
        found = steps[name]()
        if name != "kill":  # kills print as they go
            for outcome in found:
                print_outcome(outcome)
        outcomes += found
    return outcomes


def summary(outcomes: Sequence[Outcome]) -> str:
    counted = [o for o in outcomes if o.outcome != SKIPPED]
    identical = sum(o.outcome in (IDENTICAL, REJECTED) for o in counted)
    clear = sum(o.outcome == CLEAR for o in counted)
    unclear = sum(o.outcome == UNCLEAR for o in counted)
    silent = sum(o.outcome == SILENT for o in counted)
    return (
        f"RESULT faults={len(counted)} identical={identical} clear_errors={clear} "
        f"unclear_errors={unclear} silent_differences={silent}"
    )


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kill -9 moments (default 20)")
    parser.add_argument("--classes", type=int, default=None, help="first n classes (default all 8)")
    parser.add_argument(
        "--images-per-class", type=int, default=None, help="first n images of each (default all 20)"
    )
    parser.add_argument("--shard-size", type=int, default=8, help="images per shard (default 8)")
    parser.add_argument("--source-model", default="vgg16_imagenet")
    parser.add_argument("--run-timeout", type=float, default=900.0, help="seconds per kedro run")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--faults", default=",".join(ALL_FAULTS), help=f"comma-separated, of {','.join(ALL_FAULTS)}"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--pipelines",
        default=PIPELINES,
        help=f"the runs' pipelines (default the whole study: {PIPELINES}); the faults on the "
        "later pipelines' outputs are SKIPPED with fewer",
    )
    args = parser.parse_args(argv)
    faults = tuple(f for f in args.faults.split(",") if f)
    unknown = sorted(set(faults) - set(ALL_FAULTS))
    if unknown:
        parser.error(f"unknown faults {unknown}; known: {', '.join(ALL_FAULTS)}")
    return Settings(
        kills=args.kills,
        classes=args.classes,
        images_per_class=args.images_per_class,
        shard_size=args.shard_size,
        source_model=args.source_model,
        run_timeout_s=args.run_timeout,
        seed=args.seed,
        faults=faults,
        keep=args.keep,
        pipelines=args.pipelines,
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    if not (SHARED_DATASETS / "caltech101-mini").is_dir():
        raise SystemExit(f"caltech101-mini not found under {SHARED_DATASETS}")
    root = Path(tempfile.mkdtemp(prefix="fault_injection_"))
    try:
        faults = Faults(Lab(settings, root))
        print(
            f"clean run: {faults.clean_seconds:.0f} s; extraction {faults.extraction[0]:.1f}-"
            f"{faults.extraction[1]:.1f} s, statistics {faults.statistics[0]:.1f}-"
            f"{faults.statistics[1]:.1f} s after the start; {os.getloadavg()[0]:.2f} load",
            flush=True,
        )
        outcomes = run_faults(faults, settings.faults)
    finally:
        if not settings.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    print(summary(outcomes), flush=True)
    return 1 if any(o.outcome in (SILENT, UNCLEAR) for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
