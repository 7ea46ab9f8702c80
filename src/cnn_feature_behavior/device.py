"""Which device a run uses, decided once before any node runs, and said in one log line.

On a machine without an NVIDIA GPU, TensorFlow's CUDA build still calls `cuInit` when it first
lists its devices, and logs the failure as an error line (`E ... failed call to cuInit: ...
CUDA error`) that reads like a broken run. `CUDA_VISIBLE_DEVICES=''` (or `-1`) does not prevent
it: TensorFlow 2.21 still calls `cuInit` and logs the same line; and its log level
(`TF_CPP_MIN_LOG_LEVEL=3`) would hide every real error too. So the devices are listed here,
once per process, while TensorFlow's stderr is read back: where this machine has no NVIDIA
device node, the lines of that one expected failure are dropped and every other line is
written back unchanged; where it has one, nothing is filtered, so a broken driver still shows.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

# Lines TensorFlow logs when `cuInit` fails, and the driver diagnostics it logs right after.
NO_GPU_NOISE = (b"failed call to cuInit", b"cuda_diagnostics.cc")
# Device nodes of an NVIDIA GPU: /dev/nvidia0, /dev/nvidia1, .. on Linux; /dev/dxg under WSL2.
NVIDIA_DEVICE_PATTERNS = ("/dev/nvidia[0-9]*", "/dev/dxg")

_device: str | None = None


def nvidia_device_present(patterns: Sequence[str] = NVIDIA_DEVICE_PATTERNS) -> bool:
    """True where this machine has an NVIDIA device node that CUDA could use."""
    return any(glob.glob(pattern) for pattern in patterns)


@contextmanager
def stderr_without(noise: Sequence[bytes]) -> Iterator[None]:
    """Run the block with file descriptor 2 captured; write back every line without `noise`.

    File descriptor 2, not `sys.stderr`: TensorFlow's C++ logging writes to it directly.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter (a daemon's closed descriptor)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().splitlines(keepends=True)
                if not any(text in line for text in noise)
            ]
            if kept:
                os.write(2, b"".join(kept))


def initialise_tensorflow_devices() -> str:
    """List TensorFlow's devices once per process, quietly where no NVIDIA GPU exists.

    Returns the device the run uses, e.g. `CPU` or `GPU 0 (NVIDIA H200), 1 visible`; logs it at
    INFO, or at WARNING where the machine has an NVIDIA device that TensorFlow cannot use.
    """
    global _device
    if _device is not None:
        return _device
    has_nvidia = nvidia_device_present()
    import tensorflow as tf

    if has_nvidia:
        gpus = tf.config.list_physical_devices("GPU")
    else:
        with stderr_without(NO_GPU_NOISE):
            gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        _device = f"GPU 0 ({name}), {len(gpus)} visible" if name else f"GPU 0, {len(gpus)} visible"
        logger.info("Device: %s", _device)
    elif has_nvidia:
        _device = "CPU"
        logger.warning(
            "Device: CPU, although this machine has an NVIDIA device: TensorFlow sees no GPU "
            "(its error above says why; make setup EXTRAS=test,gpu adds TensorFlow's CUDA libraries)"
        )
    else:
        _device = "CPU"
        logger.info("Device: CPU (no NVIDIA GPU on this machine)")
    return _device


class DeviceHooks:
    """Decides the device before the first node runs, so that no node's log holds the noise."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        initialise_tensorflow_devices()
