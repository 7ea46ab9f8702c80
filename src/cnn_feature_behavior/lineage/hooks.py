"""The lineage hook: one lock per run, no output replaced unasked, every input checked before use.

`LineageHooks` (registered in settings.py) works for any pipeline, without a list of datasets:
- before the first node, it takes the run's locks (`run_lock.run_locks`: one per dataset x source
  model, and the dataset's own when the run writes dataset-level outputs such as the image
  index), and refuses, before anything is written, to replace an output made with other study
  settings (`records.GUARDED_PARAMETERS`: `max_images_per_class`, `crops`) unless
  `replace_outputs` is true;
- before a node loads a saved input, it checks the input's record (`records`): present, content
  intact, computed from the inputs there now and, for this run's own outputs, with this run's
  parameters; else it stops with `StaleInputError` naming the output, what changed and the
  `kedro run` that refreshes it. The partitions of a `PartitionedDataset` (other datasets' and
  other models' outputs) are checked as the node loads each one: intact and consistent with
  their own inputs (their parameters are their run's);
- after each save it writes the output's record beside it.
A pipeline added later takes part by being registered: its saved outputs get records, its inputs
are checked (docs/reliability.md, "Lineage").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from cnn_feature_behavior.lineage import digests, records
from cnn_feature_behavior.lineage.run_lock import run_locks

logger = logging.getLogger(__name__)


class StaleInputError(RuntimeError):
    """An input that is missing its record, damaged, or computed from other inputs or settings."""


class UnsupportedRunnerError(RuntimeError):
    """A runner whose nodes run in other processes, out of the hook's sight."""


class OutputsWouldBeReplacedError(RuntimeError):
    """The run would replace outputs made with other study settings (and was not asked to)."""


@dataclass
class _Lineage:
    """What an output (or an in-memory intermediate) was computed from."""

    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: _Lineage) -> None:
        self.inputs.update(other.inputs)
        self.parameters.update(other.parameters)
        self.settings.update(other.settings)


@dataclass
class _Run:
    """One run's state: the hook object lives as long as the process, runs come and go."""

    catalog: Any
    params: dict[str, Any]
    run_params: dict[str, Any]
    # Paths in records are relative to the project (a copied project keeps its lineage).
    root: Path
    locks: ExitStack = field(default_factory=ExitStack)
    # Saved this run, by path: their records.
    written: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Checked this run (content against the record), by path: their records.
    checked: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Read this run, by path (None: no record there).
    read_records: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # (path, own) whose inputs were found consistent this run.
    consistent: set[tuple[str, bool]] = field(default_factory=set)
    in_memory: dict[str, _Lineage] = field(default_factory=dict)
    partitions: dict[tuple[str, str], dict[str, dict[str, str]]] = field(default_factory=dict)
    producers: dict[str, str] | None = None
    versions: dict[str, str | None] = field(default_factory=records.versions)


class LineageHooks:
    """Records what every saved output was computed from and refuses stale inputs."""

    def __init__(self) -> None:
        self._run: _Run | None = None

    # -- the run's start and end -------------------------------------------------------------

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        _refuse_other_processes(run_params)
        params = _parameters(catalog)
        root = Path(run_params.get("project_path") or ".").resolve()
        self._run = run = _Run(catalog, params, dict(run_params), root)
        outputs = {
            name: path for name in sorted(pipeline.all_outputs()) if (path := self._path(name))
        }
        dataset, model = params.get("dataset"), params.get("source_model")
        try:
            if outputs and isinstance(dataset, str) and isinstance(model, str):
                dataset_level = [n for n, p in outputs.items() if model not in Path(p).parts]
                locks = root / "data" / ".locks"
                run.locks.enter_context(run_locks(locks, dataset, model, bool(dataset_level)))
            self._refuse_replacing(outputs)
        except Exception:  # nothing runs: the locks taken are given back
            self._end()
            raise

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._end()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._end()

    def _end(self) -> None:
        if self._run is not None:
            self._run.locks.close()
        self._run = None

    def _refuse_replacing(self, outputs: Mapping[str, str]) -> None:
        """Stop before anything is written if an output made with other study settings would be
        replaced, unless `replace_outputs` asks for it."""
        run = self._require_run()
        current = {key: _lookup(run.params, key) for key in records.GUARDED_PARAMETERS}
        conflicts = []
        for name, path in outputs.items():
            record = _read_record_or_none(self._file(path))
            if record is None:
                continue
            made = record.get("settings") or {}
            differ = {k: v for k, v in made.items() if k in current and current[k] != v}
            if differ:
                conflicts.append((name, path, made))
        # The outputs made from the settings themselves first (the index, the embedding), then
        # those computed from them.
        direct = {
            name
            for name, path, _ in conflicts
            if set((_read_record_or_none(self._file(path)) or {}).get("parameters") or {})
            & set(records.GUARDED_PARAMETERS)
        }
        conflicts.sort(key=lambda conflict: conflict[0] not in direct)
        if not conflicts or run.params.get("replace_outputs") is True:
            for name, path, made in conflicts:
                logger.warning(
                    "Replacing %s (%s), made with %s (replace_outputs: true)",
                    name,
                    path,
                    records.shown(made),
                )
            return
        listed = "\n".join(
            f"  {name} ({path}): made with {records.shown(made)}"
            for name, path, made in conflicts[:8]
        )
        more = f"\n  ... and {len(conflicts) - 8} more" if len(conflicts) > 8 else ""
        ours = records.shown({k: v for k, v in current.items() if k in conflicts[0][2]})
        raise OutputsWouldBeReplacedError(
            f"this run ({ours}) would replace {len(conflicts)} output(s) made with other "
            f"settings, and has written nothing:\n{listed}{more}\nTo replace them deliberately, "
            f"run again adding `--params replace_outputs=true` (the outputs computed from them "
            "then refuse to be used until they are computed again); to keep them, run with the "
            "settings they were made with."
        )

    # -- inputs: checked before they are loaded ----------------------------------------------

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str, node: Any) -> None:
        if self._run is None or _is_parameter(dataset_name):
            return
        dataset = self._dataset(dataset_name)
        path = self._path(dataset_name)
        if path is None or _is_partitioned(dataset):
            return
        self._check(dataset_name, path, dataset, own=True)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node: Any) -> None:
        """Partitions are loaded by the node, one by one: each loader checks its partition first."""
        if self._run is None or not _is_partitioned(self._dataset(dataset_name)):
            return
        if not isinstance(data, dict):
            return
        for key, load in list(data.items()):
            if callable(load):
                data[key] = self._checked_loader(node.name, dataset_name, key, load)

    def _checked_loader(
        self, node_name: str, dataset_name: str, key: str, load: Callable[[], Any]
    ) -> Callable[[], Any]:
        run = self._require_run()
        partition = getattr(load, "__self__", None)
        path = self._relative(_dataset_path(partition))

        def checked() -> Any:
            if path is not None:
                record = self._check(f"{dataset_name}/{key}", path, partition, own=False)
                run.partitions.setdefault((node_name, dataset_name), {})[key] = {
                    "path": path,
                    "fingerprint": record["content"],
                }
            return load()

        return checked

    def _check(self, name: str, path: str, dataset: Any, *, own: bool) -> dict[str, Any]:
        """The input's record once checked (content, inputs and, if `own`, parameters); else
        StaleInputError naming the output and the command that refreshes it."""
        run = self._require_run()
        if path in run.written:
            return run.written[path]
        record = self._record_for_use(name, path)
        if record is None:  # nothing there: the dataset's own load error says so
            return {"content": None}
        name = _named(name, record)
        if path not in run.checked:
            content = _content_digest(self._file(path), dataset)
            if content != record.get("content"):
                raise StaleInputError(
                    f"{name} ({path}) is not what its pipeline wrote (damaged or changed since "
                    f"{record.get('written')}: its content digest differs from its lineage "
                    f"record); {self._refresh(record, path)}"
                )
            run.checked[path] = record
        self._check_inputs(name, path, record, own, seen=set())
        return record

    def _record_for_use(self, name: str, path: str) -> dict[str, Any] | None:
        run = self._require_run()
        if path in run.written:
            return run.written[path]
        if path in run.read_records:
            return run.read_records[path]
        try:
            record = records.read_record(self._file(path))
        except ValueError as error:
            raise StaleInputError(f"{name}: {error}; {self._refresh(None, path)}") from error
        run.read_records[path] = record
        if record is None and self._file(path).exists():
            raise StaleInputError(
                f"{name} ({path}) has no lineage record (written before records existed, or "
                f"by hand), so what it was computed from is unknown; {self._refresh(None, path)}"
            )
        return record

    def _check_inputs(
        self, name: str, path: str, record: Mapping[str, Any], own: bool, seen: set[str]
    ) -> None:
        """Depth first, so that the error names the earliest stale output."""
        run = self._require_run()
        if path in seen or (path, own) in run.consistent:
            return
        seen.add(path)
        for input_name, recorded in (record.get("inputs") or {}).items():
            upstream_path = recorded["path"]
            upstream = self._record_for_use(input_name, upstream_path)
            input_name = _named(input_name, upstream)
            if upstream is None:
                raise StaleInputError(
                    f"{name} ({path}) was computed from {input_name} ({upstream_path}), which is "
                    f"no longer there; {self._refresh(record, path)}"
                )
            same_scope = own and self._path(input_name) == upstream_path
            self._check_inputs(input_name, upstream_path, upstream, same_scope, seen)
            if upstream.get("content") != recorded["fingerprint"]:
                raise StaleInputError(
                    f"{name} ({path}) is stale: it was computed from another {input_name} than "
                    f"the one at {upstream_path} now (written {upstream.get('written')}, after "
                    f"{name} was, on {record.get('written')}); {self._refresh(record, path)}"
                )
        if own and path not in run.written:
            changed = records.changed_parameters(record.get("parameters") or {}, run.params)
            if changed:
                listed = "; ".join(f"{k}: {_shown(v)} then, {_shown(w)} now" for k, v, w in changed)
                raise StaleInputError(
                    f"{name} ({path}) was made with other parameters than this run's ({listed}); "
                    f"{self._refresh(record, path)}"
                )
        run.consistent.add((path, own))

    # -- outputs: a record beside each --------------------------------------------------------

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        if self._run is None:
            return
        for name in outputs:
            if self._path(name) is None:
                self._run.in_memory[name] = self._lineage_of(node)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        if self._run is None:
            return
        path = self._path(dataset_name)
        if path is None:
            return
        dataset = self._dataset(dataset_name)
        if getattr(dataset, "WRITES_NOTHING", False):  # a view of another output's files
            return
        lineage = self._lineage_of(node)
        run = self._run
        files = _files_saved(self._file(path), dataset, data)
        record = {
            "format": records.RECORD_FORMAT,
            "dataset": dataset_name,
            "path": path,
            "written": records.now(),
            "node": node.name,
            "pipeline": self._pipeline_of(node),
            "content": _content_digest(self._file(path), dataset, files),
            "inputs": lineage.inputs,
            "parameters": lineage.parameters,
            "settings": lineage.settings,
            "versions": run.versions,
            "details": _details(dataset),
            "run": {
                "env": run.run_params.get("env"),
                "pipelines": run.run_params.get("pipeline_names"),
                "runtime_params": run.run_params.get("runtime_params") or {},
                "run_id": run.run_params.get("run_id"),
            },
        }
        if files is None:
            records.write_record(self._file(path), record)
        else:  # several datasets may write into one folder: a record beside each file
            for file in files:
                records.write_record(
                    file,
                    {
                        **record,
                        "path": f"{path}/{file.relative_to(self._file(path)).as_posix()}",
                        "content": digests.content_digest(file),
                    },
                )
        run.written[path] = record

    def _lineage_of(self, node: Any) -> _Lineage:
        run = self._require_run()
        lineage = _Lineage()
        for name in node.inputs:
            if name == "parameters":
                lineage.parameters.update(run.params)
            elif name.startswith("params:"):
                key = name.removeprefix("params:")
                lineage.parameters[key] = _lookup(run.params, key)
            elif name in run.in_memory:
                lineage.merge(run.in_memory[name])
            elif _is_partitioned(self._dataset(name)):
                # Other runs' outputs: their settings are theirs, not inherited.
                loaded = run.partitions.get((node.name, name), {})
                lineage.inputs.update({f"{name}/{key}": entry for key, entry in loaded.items()})
            elif (path := self._path(name)) is not None:
                record = run.written.get(path) or run.checked.get(path)
                if record is None or record.get("content") is None:
                    continue
                lineage.inputs[name] = {"path": path, "fingerprint": record["content"]}
                lineage.settings.update(record.get("settings") or {})
        for key in records.GUARDED_PARAMETERS:
            if key in lineage.parameters:
                lineage.settings[key] = lineage.parameters[key]
        return lineage

    # -- the catalog and the refresh command -------------------------------------------------

    def _require_run(self) -> _Run:
        if self._run is None:
            raise RuntimeError("LineageHooks: no run in progress")
        return self._run

    def _dataset(self, name: str) -> Any:
        catalog = self._require_run().catalog
        try:
            return catalog.get(name)
        except Exception:  # noqa: BLE001 - a name the catalog cannot build has no path
            return None

    def _path(self, name: str) -> str | None:
        """Where the dataset keeps its data, relative to the project when inside it; None for
        parameters and datasets in memory."""
        if _is_parameter(name):
            return None
        return self._relative(_dataset_path(self._dataset(name)))

    def _relative(self, path: str | None) -> str | None:
        if path is None:
            return None
        root = self._require_run().root
        absolute = Path(path) if Path(path).is_absolute() else root / path
        try:
            return absolute.resolve().relative_to(root).as_posix()
        except ValueError:
            return str(absolute)

    def _file(self, path: str) -> Path:
        return self._require_run().root / path

    def _pipeline_of(self, node: Any) -> str | None:
        run = self._require_run()
        if run.producers is None:
            run.producers = _node_pipelines()
        return run.producers.get(node.name) or (node.namespace or "").split(".")[0] or None

    def _refresh(self, record: Mapping[str, Any] | None, path: str) -> str:
        """`run kedro run ...` that computes the output at `path` again, then this run's
        pipelines after it."""
        run = self._require_run()
        producer = (record or {}).get("pipeline") or self._producer_of_path(path)
        requested = list(run.run_params.get("pipeline_names") or [])
        chosen = _pipelines_from(producer, requested)
        command = ["kedro run"]
        if run.run_params.get("env"):
            command.append(f"--env {run.run_params['env']}")
        if chosen:
            command.append(f"--pipelines {','.join(chosen)}")
        runtime = run.run_params.get("runtime_params") or {}
        if runtime:
            command.append(f"--params {records.shown(runtime)}")
        return f"refresh it with `{' '.join(command)}`"

    def _producer_of_path(self, path: str) -> str | None:
        """The pipeline that saves a dataset at `path`, of all the project's pipelines (a run
        loads only those it asked for)."""
        for name, pipeline in _all_pipelines().items():
            if any(self._path(output) == path for output in pipeline.all_outputs()):
                return name
        return None


def _refuse_other_processes(run_params: Mapping[str, Any]) -> None:
    """The ParallelRunner runs nodes and saves outputs in worker processes, each with a copy of
    the hook that cannot see what the in-memory datasets were computed from in the others: the
    records would lose inputs and parameters, and stale inputs would pass."""
    runner = str(run_params.get("runner") or "")
    if "ParallelRunner" in runner:
        raise UnsupportedRunnerError(
            "the ParallelRunner runs the nodes in other processes, where the lineage hook cannot "
            "follow what each output was computed from (docs/reliability.md, 'Lineage'); run "
            "with the default SequentialRunner or with `--runner ThreadRunner`"
        )


def _named(name: str, record: Mapping[str, Any] | None) -> str:
    """An output's name in messages: the dataset that wrote it (`embedding`, not the view
    `embedding_columns` a node read it through); a partition keeps its own."""
    written_as = (record or {}).get("dataset")
    return written_as if isinstance(written_as, str) and "/" not in name else name


def _parameters(catalog: Any) -> dict[str, Any]:
    try:
        return dict(catalog.load("parameters"))
    except Exception:  # noqa: BLE001 - a catalog without parameters: nothing to compare
        return {}


def _lookup(params: Mapping[str, Any], dotted: str) -> Any:
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _is_parameter(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


def _is_partitioned(dataset: Any) -> bool:
    try:
        from kedro_datasets.partitions import PartitionedDataset
    except ImportError:  # pragma: no cover - a dependency of the project
        return False
    return isinstance(dataset, PartitionedDataset)


def _dataset_path(dataset: Any) -> str | None:
    """Where a dataset keeps its data (`filepath` or `path` of its description); None in memory."""
    if dataset is None:
        return None
    try:
        described = dataset._describe()  # noqa: SLF001 - Kedro's own way to show a dataset
    except Exception:  # noqa: BLE001 - a dataset that cannot describe itself keeps no record
        return None
    location = described.get("filepath") or described.get("path")
    return str(location) if location else None


def _content_digest(path: Path, dataset: Any, files: list[Path] | None = None) -> str | None:
    own = getattr(dataset, "content_digest", None)
    if callable(own):
        return own()
    names = None if files is None else [f.relative_to(path).as_posix() for f in files]
    return digests.content_digest(path, names)


def _files_saved(folder: Path, dataset: Any, data: Any) -> list[Path] | None:
    """The files a save of a dict wrote into `folder` (a PartitionedDataset's partitions with its
    file name suffix, a MatplotlibDataset's named figures); None for an output of its own."""
    if (
        not isinstance(data, dict)
        or not folder.is_dir()
        or callable(getattr(dataset, "content_digest", None))
    ):
        return None
    suffix = getattr(dataset, "_filename_suffix", "") if _is_partitioned(dataset) else ""
    files = [folder / f"{key}{suffix}" for key in data]
    return [f for f in files if f.is_file()]


def _details(dataset: Any) -> dict[str, Any]:
    own = getattr(dataset, "lineage_details", None)
    return own() if callable(own) else {}


def _read_record_or_none(path: str) -> dict[str, Any] | None:
    try:
        return records.read_record(path)
    except ValueError:
        return None


def _node_pipelines() -> dict[str, str]:
    """{node name: the first registered pipeline (in study order) that holds it}; empty outside a
    Kedro project (the node's namespace is then taken)."""
    from kedro.framework.project import pipelines

    try:
        names = list(pipelines)
    except Exception:  # noqa: BLE001 - no project configured (a runner used directly)
        return {}
    order = _study_order()
    names = sorted(
        (n for n in names if n != "__default__"),
        key=lambda n: (order.index(n) if n in order else len(order), n),
    )
    found: dict[str, str] = {}
    for name in names:
        for node in pipelines[name].nodes:
            found.setdefault(node.name, name)
    return found


def _pipelines_from(producer: str | None, requested: list[str]) -> list[str]:
    """The pipelines that refresh an output of `producer` and then give what this run wanted:
    in study order, from `producer` to the last pipeline asked for; else `producer` then the
    pipelines asked for."""
    if producer is None:
        return []
    order = _study_order()
    if producer in order and all(p in order for p in requested):
        last = max([order.index(p) for p in requested] + [order.index(producer)])
        return order[order.index(producer) : last + 1]
    return [producer] + [p for p in requested if p != producer]


def _all_pipelines() -> dict[str, Any]:
    """Every pipeline of the project's `pipelines` package, by name (`create_pipeline()` of each
    module, as Kedro's `find_pipelines` builds them); empty where there is none."""
    import importlib
    import pkgutil

    package = __name__.split(".")[0]
    try:
        module = importlib.import_module(f"{package}.pipelines")
    except ImportError:
        return {}
    found = {}
    for info in pkgutil.iter_modules(module.__path__):
        try:
            found[info.name] = importlib.import_module(
                f"{package}.pipelines.{info.name}"
            ).create_pipeline()
        except Exception:  # noqa: BLE001 - a pipeline that cannot be built produces nothing here
            continue
    return found


def _study_order() -> list[str]:
    try:
        from cnn_feature_behavior.pipeline_registry import STUDY_ORDER
    except ImportError:  # pragma: no cover
        return []
    return list(STUDY_ORDER)


def _shown(value: Any) -> str:
    return records.shown({"v": value}).removeprefix("v=")
