"""One run at a time per dataset x source model, and none beside a run that rewrites the dataset.

Every run takes `data/.locks/<dataset>/model-<source model>.lock` before its first node (the
lineage hook does), so a second run of the same dataset and source model stops at once, naming
the first, and writes nothing. A run whose pipelines write dataset-level outputs (the image
index, its rejects, the dataset's properties, the transfer splits: shared by every source model)
also takes `data/.locks/<dataset>/dataset.lock` and refuses while a run of another source model
holds its lock on the dataset; a run of another source model refuses while the dataset's lock is
held. Each takes its own lock first and looks for the other second, so two runs starting at once
never both go on (at worst both stop). The locks are `folder_lock`'s: a killed run's lock is
stale and taken over with a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from cnn_feature_behavior.extraction.folder_lock import FolderLockedError, folder_lock, live_holder

DATASET_LOCK = "dataset.lock"


def model_lock_name(source_model: str) -> str:
    return f"model-{source_model}.lock"


@contextmanager
def run_locks(
    root: Path, dataset: str, source_model: str, writes_dataset_outputs: bool
) -> Iterator[None]:
    """Hold the run's locks under `root` for the block; FolderLockedError naming the holder."""
    folder = Path(root) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as held:
        held.enter_context(
            folder_lock(folder, model_lock_name(source_model), f"{dataset} x {source_model}")
        )
        if writes_dataset_outputs:
            held.enter_context(folder_lock(folder, DATASET_LOCK, f"dataset {dataset}"))
            _refuse_beside_other_models(folder, dataset, source_model)
        else:
            holder = live_holder(folder / DATASET_LOCK)
            if holder is not None:
                raise FolderLockedError(
                    f"dataset {dataset} is being rewritten (its image index, ...) by process "
                    f"{holder.get('pid')} on {holder.get('host')} since {holder.get('since')} "
                    f"(lock file {folder / DATASET_LOCK}); wait for that run to finish"
                )
        yield


def _refuse_beside_other_models(folder: Path, dataset: str, source_model: str) -> None:
    mine = model_lock_name(source_model)
    for path in sorted(folder.glob("model-*.lock")):
        if path.name == mine:
            continue
        holder = live_holder(path)
        if holder is not None:
            other = path.name.removeprefix("model-").removesuffix(".lock")
            raise FolderLockedError(
                f"this run would rewrite dataset {dataset}'s outputs (its image index, ...) "
                f"while process {holder.get('pid')} on {holder.get('host')} runs {dataset} x "
                f"{other} on them since {holder.get('since')} (lock file {path}); wait for that "
                "run to finish"
            )
