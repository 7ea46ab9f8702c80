"""The run locks (issue 27, finding 3): one run per dataset x source model, none beside a run that
rewrites the dataset's own outputs; tried with a second real process holding the lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cnn_feature_behavior.extraction.folder_lock import FolderLockedError
from cnn_feature_behavior.lineage.run_lock import run_locks

_HOLD = (
    "import sys, time; from pathlib import Path\n"
    "from cnn_feature_behavior.lineage.run_lock import run_locks\n"
    "with run_locks(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == 'dataset'):\n"
    "    print('held', flush=True); time.sleep(120)\n"
)


@pytest.fixture
def holder(tmp_path):
    """Start a process holding run locks; yields a function (dataset, model, level) -> pid."""
    started = []

    def hold(dataset: str, model: str, level: str) -> int:
        process = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(tmp_path / "locks"), dataset, model, level],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process.pid

    yield hold
    for process in started:
        process.kill()
        process.wait()


def test_a_second_run_of_the_same_dataset_and_model_stops_naming_the_first(tmp_path, holder):
    pid = holder("caltech101", "vgg16_imagenet", "model")
    with pytest.raises(
        FolderLockedError, match=rf"caltech101 x vgg16_imagenet is in use by process {pid}"
    ):
        with run_locks(tmp_path / "locks", "caltech101", "vgg16_imagenet", False):
            pass
    # Another source model on the same dataset may run beside it, another dataset too.
    with run_locks(tmp_path / "locks", "caltech101", "vgg16_hed_bsds500", False):
        pass
    with run_locks(tmp_path / "locks", "flowers102", "vgg16_imagenet", True):
        pass


def test_a_run_rewriting_the_dataset_excludes_every_other_model(tmp_path, holder):
    pid = holder("caltech101", "vgg16_imagenet", "dataset")
    with pytest.raises(FolderLockedError, match=rf"being rewritten .* process {pid}"):
        with run_locks(tmp_path / "locks", "caltech101", "vgg16_hed_bsds500", False):
            pass


def test_no_run_rewrites_the_dataset_beside_another_models_run(tmp_path, holder):
    pid = holder("caltech101", "vgg16_hed_bsds500", "model")
    with pytest.raises(FolderLockedError, match=rf"would rewrite dataset caltech101.* {pid}"):
        with run_locks(tmp_path / "locks", "caltech101", "vgg16_imagenet", True):
            pass
    # It took and gave back its own locks: the other run's is all that is left.
    assert sorted(p.name for p in (tmp_path / "locks" / "caltech101").glob("*.lock")) == [
        "model-vgg16_hed_bsds500.lock"
    ]


def test_the_locks_are_released_after_the_run_and_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with run_locks(tmp_path / "locks", "digits", "tiny", True):
            assert len(list((tmp_path / "locks" / "digits").glob("*.lock"))) == 2
            raise RuntimeError("boom")
    assert not list(Path(tmp_path / "locks" / "digits").glob("*.lock"))
