"""The run's device: said in one line, and no cuInit error line where there is no GPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cnn_feature_behavior.device import nvidia_device_present, stderr_without

LIST_DEVICES = "import tensorflow as tf; tf.config.list_physical_devices()"
QUIET_LIST = (
    "import logging; logging.basicConfig(level=logging.INFO);"
    "from cnn_feature_behavior.device import initialise_tensorflow_devices as init;"
    "print(init()); print(init());"
    "import tensorflow as tf; tf.constant(1.0) + 1"
)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_stderr_without_drops_only_the_noise_lines(capfd):
    print("before", file=sys.stderr)
    with stderr_without((b"cuInit",)):
        print("python line", file=sys.stderr)
        os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: CUDA error\n")
        os.write(2, b"E0000 other.cc:1] a real error\n")
    print("after", file=sys.stderr)
    assert capfd.readouterr().err.splitlines() == [
        "before",
        "python line",
        "E0000 other.cc:1] a real error",
        "after",
    ]


def test_stderr_without_writes_back_when_the_block_raises(capfd):
    with pytest.raises(ValueError), stderr_without((b"noise",)):
        os.write(2, b"kept\nnoise\n")
        raise ValueError
    assert capfd.readouterr().err == "kept\n"


def test_nvidia_device_present_reads_device_nodes(tmp_path):
    assert not nvidia_device_present((str(tmp_path / "nvidia[0-9]*"),))
    (tmp_path / "nvidiactl").touch()  # the control node alone is no GPU
    assert not nvidia_device_present((str(tmp_path / "nvidia[0-9]*"),))
    (tmp_path / "nvidia0").touch()
    assert nvidia_device_present((str(tmp_path / "nvidia[0-9]*"),))


@pytest.mark.skipif(nvidia_device_present(), reason="this machine has an NVIDIA device node")
def test_a_machine_without_gpu_gets_no_cuinit_line_and_one_device_line():
    bare = _python(LIST_DEVICES)
    assert bare.returncode == 0, bare.stderr
    if "failed call to cuInit" not in bare.stderr:
        pytest.skip("this TensorFlow build logs no cuInit failure (not a CUDA build)")
    quiet = _python(QUIET_LIST)
    assert quiet.returncode == 0, quiet.stderr
    assert "cuInit" not in quiet.stderr
    assert quiet.stdout.splitlines() == ["CPU", "CPU"]
    device_lines = [line for line in quiet.stderr.splitlines() if "Device:" in line]
    assert device_lines == [
        "INFO:cnn_feature_behavior.device:Device: CPU (no NVIDIA GPU on this machine)"
    ]


@pytest.mark.slow
@pytest.mark.skipif(nvidia_device_present(), reason="this machine has an NVIDIA device node")
def test_kedro_run_says_its_device_once_without_cuinit_line(project_copy):
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--pipelines", "ingestion"]
        + ["--params", "max_images_per_class=2,ingestion.verify_images=false"],
        cwd=project_copy,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "200"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "cuInit" not in output
    assert output.count("Device: CPU (no NVIDIA GPU on this machine)") == 1
