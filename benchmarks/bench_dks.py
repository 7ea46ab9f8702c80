"""Benchmark of the DKS core at ImageNet scale (issues 4 and 11), printed in one run.

    python benchmarks/bench_dks.py            # 50,000 images x 12,416 features x 1,000 classes
    python benchmarks/bench_dks.py --quick    # 10,000 x 1,024 x 200, for a smoke run
    python benchmarks/bench_dks.py --scaling  # also how time grows with images, features, classes

Prints, for the binned (100 bins) and the exact mode (bins: null): the wall time of the full DKS
matrix plus one randomised repetition (both labellings served from one pass of the compiled
kernels, as the compute_statistics node does) with its davg and thresholds, against the issue-11
targets of 10 s and 30 s; peak memory above the input matrix; the exact mode's speed-up over the
previous pure-numpy exact kernel (kept below, in this script only, as the baseline) and over
scipy.stats.ks_2samp called per pair, with a check that the exact mode agrees with ks_2samp; the
KL / Bhattacharyya kernel's cost. Values are synthetic: ReLU'd normal activations (many exact
zeros, as in a CNN) with a class-dependent shift on some features. The machine may be shared:
os.getloadavg() is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from scipy.stats import ks_2samp

from cnn_feature_behavior.statistics import calibration
from cnn_feature_behavior.statistics.dks import (
    class_sizes,
    feature_range,
    signed_ks,
    signed_ks_labellings,
)
from cnn_feature_behavior.statistics.histogram_distances import histogram_distances

GIB = 2**30
TARGET_SECONDS = {100: 10.0, None: 30.0}
TARGET_PEAK_GIB, TARGET_SPEEDUP = 4.0, 1000.0


class PeakMemory:
    """Peak resident memory of this process from start(): the kernel's high-water mark, reset through
    /proc/self/clear_refs where allowed, else psutil sampled every 5 ms."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._sampled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._use_kernel = "VmHWM" in Path("/proc/self/status").read_text()
        except OSError:
            self._use_kernel = False
        if not self._use_kernel:
            self._stop.clear()
            self._sampled = self._process.memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._sampled = max(self._sampled, self._process.memory_info().rss)

    def peak(self) -> int:
        if self._use_kernel:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self._sampled

    @property
    def method(self) -> str:
        return "kernel VmHWM" if self._use_kernel else "psutil sampling"


def synthetic(n_images: int, n_features: int, n_classes: int, seed: int = 0):
    """(values (images, features) float32 in column-major order as pandas gives it, labels, names)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_images) % n_classes)
    values = np.empty((n_features, n_images), np.float32).T  # column-major, like a loaded embedding
    shift = (labels % 7 == 0).astype(np.float32)
    for start in range(0, n_features, 1024):
        stop = min(start + 1024, n_features)
        block = rng.standard_normal((stop - start, n_images), dtype=np.float32)
        block[::5] += shift  # a fifth of the features respond to some classes
        np.maximum(block, 0, out=block)
        values[:, start:stop] = block.T
    return values, labels, [f"class{c}" for c in range(n_classes)]


def load() -> tuple[float, float, float]:
    return tuple(round(v, 2) for v in os.getloadavg())


def dks_and_one_randomised_repetition(values, labels, names, workers, bins):
    """What compute_statistics and the calibration nodes compute for one repetition, timed."""
    times = {}
    start, cpu = time.perf_counter(), time.process_time()
    (permuted,) = calibration.permuted_labels(labels, 1, seed=2018)
    both = signed_ks_labellings(values, [labels, permuted], names, bins=bins, workers=workers)
    real, randomised = both.astype(np.float32)
    times["dks + randomised dks (one pass)"] = time.perf_counter() - start
    # CPU seconds of this process: / 2 is the wall time on 2 idle cores, whatever the load.
    times["  (CPU time of that pass)"] = time.process_time() - cpu
    start = time.perf_counter()
    thresholds = []
    sorted_real, sorted_randomised = (
        np.sort(m.astype(np.float64).ravel()) for m in (real, randomised)
    )
    for side in calibration.SIDES:
        x = calibration.threshold_grid(side)
        davg = calibration.davg(
            calibration.count_beyond(sorted_real, x, side),
            calibration.count_beyond(sorted_randomised, x, side),
            len(names),
        )
        thresholds.append(calibration.best_threshold(x, davg)[0])
    times["davg and thresholds"] = time.perf_counter() - start
    return real, times, thresholds


def previous_exact_dks(values: np.ndarray, labels: np.ndarray, names) -> np.ndarray:
    """The exact mode as it was before the compiled kernels (numpy argsorts per feature), kept
    here only as the speed baseline; one thread, one labelling."""
    sizes = class_sizes(labels, names)
    n_images = labels.size
    denominator = (sizes * (n_images - sizes)).astype(np.float64)
    block_t = np.ascontiguousarray(values.T)
    lo, hi = feature_range(block_t, 0, None)
    out = np.empty((block_t.shape[0], sizes.size))
    _exact_work(labels, sizes, denominator)(block_t, lo, hi, (out,))
    return out


def signed_from_scores(score_max, score_min, denominator):
    return np.where(score_max > -score_min, score_max, score_min) / denominator


def _exact_work(labels, sizes, denominator):
    n_images, n_classes = labels.size, sizes.size
    label_type = np.int16 if n_classes <= np.iinfo(np.int16).max else np.int32
    labels = labels.astype(label_type)
    class_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    positions = np.arange(n_images)

    def run_bounds(is_new_run: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and last position of the run of equal entries holding each position."""
        first = np.maximum.accumulate(np.where(is_new_run, positions, 0))
        ends = np.empty_like(is_new_run)
        ends[:-1] = is_new_run[1:]
        ends[-1] = True
        last = np.minimum.accumulate(np.where(ends, positions, n_images)[::-1])[::-1]
        return first, last

    def work(block_t, lo, hi, outs):
        (out,) = outs
        score_max = np.empty((len(block_t), n_classes), np.int64)
        score_min = np.empty_like(score_max)
        for f, row in enumerate(block_t):
            by_value = np.argsort(row)
            sorted_values = row[by_value]
            new_value = np.empty(n_images, bool)
            new_value[0] = True
            np.not_equal(sorted_values[1:], sorted_values[:-1], out=new_value[1:])
            first, last = run_bounds(new_value)
            # Stable: images end up sorted by class, then by value within the class.
            by_class = np.argsort(labels[by_value], kind="stable")
            class_of = labels[by_value][by_class]
            values_in_class = sorted_values[by_class]
            new_run = np.empty(n_images, bool)
            new_run[0] = True
            np.not_equal(values_in_class[1:], values_in_class[:-1], out=new_run[1:])
            new_run[1:] |= class_of[1:] != class_of[:-1]
            first_in, last_in = run_bounds(new_run)
            start = class_starts[class_of]
            n = sizes[class_of]
            # Just below each inner value (T, I count values < x): where outer - inner peaks.
            below = n * first[by_class] - n_images * (first_in - start)
            # At each inner value (T, I count values <= x): where outer - inner bottoms out.
            at = n * (last[by_class] + 1) - n_images * (last_in + 1 - start)
            score_max[f] = np.maximum.reduceat(below, class_starts)
            score_min[f] = np.minimum.reduceat(at, class_starts)
        out[:] = signed_from_scores(score_max, score_min, denominator)

    return work


def scaling(base: tuple[int, int, int], factors: tuple[float, ...], workers: int) -> None:
    names_of_axes = ("images", "features", "classes")
    print(
        f"\nScaling of one binned DKS matrix around "
        f"{base[0]:,} images x {base[1]:,} features x {base[2]:,} classes:"
    )
    print(
        f"  {'varied':<9}{'images':>9}{'features':>10}{'classes':>9}"
        f"{'seconds':>10}{'Mpairs/s':>10}{'x time / x size':>17}"
    )
    for axis, axis_name in enumerate(names_of_axes):
        first = None
        for factor in factors:
            size = list(base)
            size[axis] = int(base[axis] * factor)
            values, labels, names = synthetic(*size, seed=axis)
            seconds = float("inf")
            for _ in range(3):  # best of 3: other processes share the CPUs
                start = time.perf_counter()
                signed_ks(values, labels, names, bins=100, workers=workers)
                seconds = min(seconds, time.perf_counter() - start)
            first = first or (seconds, size[axis])
            growth = (seconds / first[0]) / (size[axis] / first[1])
            print(
                f"  {axis_name:<9}{size[0]:>9,}{size[1]:>10,}{size[2]:>9,}{seconds:>10.2f}"
                f"{size[1] * size[2] / seconds / 1e6:>10.2f}{growth:>17.2f}"
            )
            del values


def scipy_comparison(values, labels, names, workers, n_pairs, rng):
    """ks_2samp per pair on random pairs of 16 features: its rate, the exact mode's rate on those
    16 features (one labelling), the previous numpy kernel's rate there, and the agreement."""
    n_features, n_classes = values.shape[1], len(names)
    features = np.sort(rng.choice(n_features, size=min(16, n_features), replace=False))
    subset = np.ascontiguousarray(values[:, features])
    pairs = [
        (int(rng.integers(len(features))), int(rng.integers(n_classes))) for _ in range(n_pairs)
    ]
    start = time.perf_counter()
    reference = [ks_2samp(subset[labels == c, f], subset[labels != c, f]) for f, c in pairs]
    scipy_rate = n_pairs / (time.perf_counter() - start)
    start = time.perf_counter()
    exact = signed_ks(subset, labels, names, bins=None, workers=workers)
    exact_rate = exact.size / (time.perf_counter() - start)
    start = time.perf_counter()
    previous = previous_exact_dks(subset, labels, names)
    previous_rate = previous.size / (time.perf_counter() - start)
    ours = np.array([exact[f, c] for f, c in pairs])
    statistic = np.array([r.statistic for r in reference])
    sign = np.array([r.statistic_sign for r in reference])
    magnitude = float(np.max(np.abs(np.abs(ours) - statistic)))
    # Signs can only differ on exact ties of +max and -max, where scipy's sign follows float rounding.
    sign_differences = int(np.sum((statistic > 0) & (np.sign(ours) != -sign)))
    previous_difference = float(np.max(np.abs(previous - exact)))
    return scipy_rate, exact_rate, previous_rate, magnitude, sign_differences, previous_difference


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="10,000 x 1,024 x 200 instead of ImageNet scale"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count(), help="threads (default: all CPUs)"
    )
    parser.add_argument("--scaling", action="store_true", help="also time 9 other sizes")
    parser.add_argument("--no-kl", action="store_true", help="skip the KL / Bhattacharyya timing")
    return parser.parse_args()


def compile_kernels(values, labels, names) -> None:
    """First calls compile the kernels (or load them from numba's cache): not part of the timings."""
    signed_ks_labellings(values[:, :2], [labels, labels], names, bins=100, workers=1)
    signed_ks_labellings(values[:, :2], [labels, labels], names, bins=None, workers=1)
    histogram_distances(values[:, :2], labels, names, bins=100, workers=1)


def time_mode(values, labels, names, workers: int, bins: int | None) -> float:
    """DKS + one randomised repetition in one mode, against the targets; returns its wall time."""
    pairs = values.shape[1] * len(names)
    memory = PeakMemory()
    baseline = psutil.Process().memory_info().rss
    memory.start()
    start = time.perf_counter()
    _, times, thresholds = dks_and_one_randomised_repetition(values, labels, names, workers, bins)
    wall = time.perf_counter() - start
    peak_above = memory.peak() - baseline
    mode = "binned (100 bins)" if bins else "exact (bins: null)"
    print(f"\n{mode}: load average {load()}")
    for stage, seconds in times.items():
        print(f"  {stage:<34}{seconds:8.1f} s")
    target = TARGET_SECONDS[bins]
    print(
        f"  DKS + one randomised repetition: {wall:.1f} s wall (target <= {target:.0f} s): "
        f"{'PASS' if wall <= target else 'FAIL'}; "
        f"{2 * pairs / times['dks + randomised dks (one pass)']:,.0f} pairs/s"
    )
    print(
        f"  peak memory above the input ({memory.method}): {peak_above / GIB:.2f} GiB "
        f"(target <= {TARGET_PEAK_GIB:.0f} GiB): "
        f"{'PASS' if peak_above <= TARGET_PEAK_GIB * GIB else 'FAIL'}"
    )
    print(
        f"  thresholds on these synthetic values: t+ = {thresholds[0]:.3f}, t- = {thresholds[1]:.3f}"
    )
    return wall


def report_speedups(values, labels, names, args, walls: dict, rng) -> None:
    """The exact and binned modes' rates against ks_2samp per pair and the previous kernel."""
    pairs = values.shape[1] * len(names)
    scipy_rate, exact_rate, previous_rate, magnitude, sign_differences, previous_difference = (
        scipy_comparison(values, labels, names, args.workers, 100 if args.quick else 200, rng)
    )
    binned_rate = 2 * pairs / walls[100]
    print(f"\nOn 16 features (one labelling), load average {load()}:")
    print(f"  scipy.stats.ks_2samp per pair: {scipy_rate:,.1f} pairs/s")
    print(
        f"  exact mode: {exact_rate:,.0f} pairs/s = {exact_rate / scipy_rate:,.0f}x ks_2samp, "
        f"{exact_rate / previous_rate:,.1f}x the previous numpy exact kernel "
        f"({previous_rate:,.0f} pairs/s on one thread; largest difference {previous_difference:.1e})"
    )
    print(
        f"  exact vs ks_2samp on the sampled pairs: largest |DKS| difference {magnitude:.1e}, "
        f"sign differences {sign_differences}"
    )
    full_exact_rate = 2 * pairs / walls[None]
    print(
        f"  at full scale: exact mode {full_exact_rate:,.0f} pairs/s "
        f"(= {full_exact_rate / scipy_rate:,.0f}x ks_2samp, "
        f"{full_exact_rate / previous_rate:,.1f}x the previous kernel's rate; the previous kernel "
        f"would take ~{2 * pairs / previous_rate:,.0f} s one-threaded for DKS + one repetition)"
    )
    speedup = binned_rate / scipy_rate
    print(
        f"  binned mode {binned_rate:,.0f} pairs/s = {speedup:,.0f}x ks_2samp "
        f"(target >= {TARGET_SPEEDUP:,.0f}x): {'PASS' if speedup >= TARGET_SPEEDUP else 'FAIL'}"
    )


def main() -> None:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped to a file
    n_images, n_features, n_classes = (
        (10_000, 1_024, 200) if args.quick else (50_000, 12_416, 1_000)
    )
    rng = np.random.default_rng(1)
    print(
        f"DKS benchmark: {n_images:,} images x {n_features:,} features x {n_classes:,} classes "
        f"({n_features * n_classes:,} pairs), {args.workers} thread(s), {os.cpu_count()} CPU(s); "
        f"load average {load()}"
    )
    values, labels, names = synthetic(n_images, n_features, n_classes)
    compile_kernels(values, labels, names)
    print(f"Input matrix: {values.nbytes / GIB:.2f} GiB float32")
    walls = {bins: time_mode(values, labels, names, args.workers, bins) for bins in (100, None)}
    report_speedups(values, labels, names, args, walls, rng)

    if not args.no_kl:
        start = time.perf_counter()
        histogram_distances(values, labels, names, bins=100, workers=args.workers)
        print(
            f"\nKL + Bhattacharyya (computed in the same node from the same blocks): "
            f"{time.perf_counter() - start:.1f} s; load average {load()}"
        )
    del values
    if args.scaling:
        if args.quick:
            scaling((5_000, 256, 50), (1, 2, 4), args.workers)
        else:
            scaling((20_000, 2_048, 250), (0.5, 1, 2), args.workers)


if __name__ == "__main__":
    main()
