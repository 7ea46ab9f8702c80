"""Which parameters make an output stale (lineage/records.py): a pipeline's thread or worker count
never does, for pipelines added later too (issue 27, "Lineage")."""

from __future__ import annotations

from pathlib import Path

import yaml

from cnn_feature_behavior.lineage import records

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"
THREAD_COUNTS = ("workers", "threads", "decode_workers", "n_workers", "threads_per_worker")


def _keys(block: object, prefix: str = ""):
    if isinstance(block, dict):
        for key, value in block.items():
            yield f"{prefix}{key}"
            yield from _keys(value, f"{prefix}{key}.")


def test_every_thread_and_worker_count_is_runtime_only():
    counts = [
        key
        for path in sorted(CONF.glob("parameters*.yml"))
        for key in _keys(yaml.safe_load(path.read_text()) or {})
        if key.rsplit(".", 1)[-1] in THREAD_COUNTS
    ]
    assert "retrieval.workers" in counts and "few_shot.workers" in counts
    assert [key for key in counts if not records.is_runtime_only(key)] == []


def test_a_changed_thread_count_changes_nothing_and_a_changed_setting_does():
    recorded = {"retrieval": {"k": 10, "workers": None}, "few_shot": {"workers": None}}
    current = {"retrieval": {"k": 10, "workers": 2}, "few_shot": {"workers": 1}}
    assert records.changed_parameters(recorded, current) == []
    current["retrieval"]["k"] = 5
    assert records.changed_parameters(recorded, current) == [("retrieval.k", 10, 5)]
