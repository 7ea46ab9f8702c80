"""The fault-injection run's short form (benchmarks/fault_injection.py): real `kedro run`s with the
default VGG16 on 2 classes x 3 images of caltech101-mini (ingestion, extraction and DKS), a kill
-9 during extraction, a truncated shard, a byte flipped in a shard's data and in its footer, a garbled
plan.json and five hostile files; every result must equal the clean run's bit for bit, or the
fault end in an error naming the file or a reject with the reason.

About 2 minutes of CPU (two cores); bounded at 10 minutes of wall time on a loaded machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from builders.project import PROJECT_ROOT, SHARED_DATASETS

SCRIPT = PROJECT_ROOT / "benchmarks" / "fault_injection.py"
SHORT_FORM = [
    "--kills", "1",
    "--classes", "2",
    "--images-per-class", "3",
    "--shard-size", "2",
    "--run-timeout", "300",
    "--pipelines", "ingestion,feature_extraction,dks",
    "--faults", "kill,truncated_shard,flipped_shard_byte,plan_garbled,hostile_images",
]  # fmt: skip
WEIGHTS = PROJECT_ROOT / "data" / "06_models"


@pytest.mark.slow
def test_short_fault_injection_run_finds_no_silent_difference():
    if not (SHARED_DATASETS / "caltech101-mini").is_dir():
        pytest.skip(f"caltech101-mini not found under {SHARED_DATASETS}")
    if not any(WEIGHTS.glob("vgg16_imagenet*.h5")):
        pytest.skip(f"no VGG16 weights under {WEIGHTS} (make setup)")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *SHORT_FORM],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
    )
    output = result.stdout + result.stderr[-3000:]
    faults = [line for line in result.stdout.splitlines() if line.startswith("FAULT ")]
    assert len(faults) == 10, output  # 1 kill, 4 store faults, 5 hostile files
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"RESULT faults=10 identical=\d+ clear_errors=\d+ unclear_errors=0 silent_differences=0",
        last,
    ), output
    assert result.returncode == 0, output
    hostile = [line for line in faults if "rejected with reason" in line]
    assert len(hostile) == 5, output
