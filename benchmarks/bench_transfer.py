"""Benchmark of the transfer evaluation (one repetition): time, peak memory, every row against a
converged, tuned logistic regression, and the stability of the rows over fold seeds.

    python benchmarks/bench_transfer.py                        # every scale and real embedding
    python benchmarks/bench_transfer.py --only flowers102      # one scale
    python benchmarks/bench_transfer.py --only caltech101_real --no-reference
    python benchmarks/bench_transfer.py --only caltech101_real --force-scale-path
    python benchmarks/bench_transfer.py --only caltech101_real --reference-cache ref.csv  # fit once
    python benchmarks/bench_transfer.py --only caltech101_real --reference-folds 5 \
        --reference-cache ref.csv   # the reference tuned on 5 folds, the evaluation on its own
    python benchmarks/bench_transfer.py --only caltech101_real --force-scale-path \
        --scale-path-reference /work/sp-cache/reference   # bench_scale_path.py's cached rows
    python benchmarks/bench_transfer.py --only small --c-stability   # 3 fold seeds (3x time)
    flock /work/coord/bigmem.lock python benchmarks/bench_transfer.py --only caltech256

Scales (synthetic, VGG16-shaped; each runs in its own process so that its peak resident memory
is its own): `small` (1,000 images, 1,152 features in VGG16's first 7 conv layers, 10 classes,
300 train: a quick check), `flowers102` (8,189 images, 4,224 features in VGG16's 13 conv
layers, 102 classes, 2,040 train / 6,149 test), `caltech256` (29,780 images, 12,416 features in
VGG16's 15 layers, 256 classes, 60 training images per class, every class), `imagenet` (50,000
images, 12,416 features, 1,000 classes, 25,000 train). Real embeddings: `caltech101_real` (the
shared VGG16 embedding of the whole Caltech-101, ../shared/embeddings, 30 training images per
class, the rest test) and any `kedro run` embedding given with --embedding DIR (the project's
data/04_feature layout: the default digits study, the shared minis), with the dataset's own
seeded split parameters (train_fraction 0.5, or train_per_class 30 for caltech101).

Each prints the whole evaluation's time (every layer, the full network, the FNE, every curve
point of every ranking, of ANOVA-F and of every random draw, continuous and three-valued, C by
cross-validation on the training split), the load average and the solver, then, where the
reference is affordable (--reference-limit on training images x min(features, images) x
classes), the comparison of every row with the reference: scikit-learn's LogisticRegression
(lbfgs on float64 matrices, tol 1e-6 in every fit, those that choose C too, up to 5,000
iterations; in the row space where a training matrix has fewer images than features: the same
solution), its C chosen by the evaluation's own folds and criterion (mean held-out log-loss)
over a grid widened until the choice is not at its edge. With --c-stability the evaluation runs
again with two more fold seeds. Last line per scale, exactly:
`RESULT <scale> wall_s=<seconds> peak_gib=<GiB> max_shortfall=<x> c_stability=<y>`: x the
largest (reference - evaluation) of any row's test mean per-class accuracy (0 if never below;
nan where the reference fitted no row), y the largest move of any row's test mean per-class
accuracy over the 3 fold seeds (nan without --c-stability).

Synthetic images: a class centre plus noise in a 96-dimensional latent space, seen through a
random ReLU layer per layer, so that features are non-negative, correlated and informative
to various degrees, as VGG16 spatial means are.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from cnn_feature_behavior.transfer import classifier as classifier_module
from cnn_feature_behavior.transfer.blas import blas_threads
from cnn_feature_behavior.transfer.classifier import SCALE_PATH, accuracies, fit_probe
from cnn_feature_behavior.transfer.evaluation import (
    check_inputs,
    evaluate_split,
    prepare,
    training_folds,
)
from cnn_feature_behavior.transfer.features import RANKINGS, random_order
from cnn_feature_behavior.transfer.jobs import KINDS, embedding_jobs, probe_data
from cnn_feature_behavior.transfer.settings import LOGISTIC, TransferSettings
from cnn_feature_behavior.transfer.splits import transfer_splits

ROOT = Path(__file__).resolve().parents[1]
SHARED_EMBEDDING = ROOT.parent / "shared" / "embeddings" / "caltech101-vgg16-conv"
VGG16_CONV = {
    "conv1_1": 64, "conv1_2": 64, "conv2_1": 128, "conv2_2": 128, "conv3_1": 256, "conv3_2": 256,
    "conv3_3": 256, "conv4_1": 512, "conv4_2": 512, "conv4_3": 512, "conv5_1": 512,
    "conv5_2": 512, "conv5_3": 512,
}  # fmt: skip
FC = {"fc6": 4096, "fc7": 4096}
SCALES = {
    # images, classes, training images (per class, or in all), layers
    "small": (1000, 10, 30, dict(list(VGG16_CONV.items())[:7])),
    "flowers102": (8189, 102, 20, VGG16_CONV),
    "caltech256": (29780, 256, 60, {**VGG16_CONV, **FC}),
    "imagenet": (50000, 1000, 25, {**VGG16_CONV, **FC}),
}
REAL = ("caltech101_real",)
# Reference fits (training images x features x classes of the largest embedding) above this
# are skipped: the converged logistic regression would take hours on 2 cores.
REFERENCE_LIMIT = 1.5e9


def synthetic(n_images: int, n_classes: int, per_class: int, layer_sizes: dict, seed: int = 0):
    """(values, labels, is_train, layers): every class has per_class training images."""
    rng = np.random.default_rng(seed)
    train = np.repeat(np.arange(n_classes), per_class)
    test = rng.integers(0, n_classes, n_images - train.size)
    labels = np.concatenate([train, test])
    is_train = np.arange(n_images) < train.size
    latent_dim = 96
    centres = rng.standard_normal((n_classes, latent_dim)).astype(np.float32)
    latent = centres[labels] * 0.45 + rng.standard_normal((n_images, latent_dim), np.float32)
    values = np.empty((n_images, sum(layer_sizes.values())), np.float32)
    layers, start = [], 0
    for depth, (layer, size) in enumerate(layer_sizes.items()):
        # Deeper layers see more of the class structure, as in a trained network.
        mix = (depth + 1) / len(layer_sizes)
        weights = rng.standard_normal((latent_dim, size)).astype(np.float32) * mix
        block = values[:, start : start + size]
        np.matmul(latent, weights, out=block)
        block += rng.standard_normal((n_images, size), np.float32) * 3.0
        np.maximum(block, 0.0, out=block)
        layers += [layer] * size
        start += size
    return values, labels, is_train, np.array(layers)


def real_embedding(directory: Path, split_params: dict):
    """(values, labels, is_train, layers) of a stored embedding with a seeded split."""
    if (directory / "embedding.parquet").is_file():  # the shared Caltech-101 embedding
        frame = pd.read_parquet(directory / "embedding.parquet")
        manifest = pd.read_parquet(directory / "feature_manifest.parquet")
        index = frame[["image_id", "label", "class_name"]]
        values = frame[manifest["feature"].tolist()].to_numpy(np.float32)
    else:  # a kedro run's data/04_feature/<model>/<dataset> and data/02_intermediate/<dataset>
        from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset

        embedding = ShardedEmbeddingDataset(path=str(directory / "embedding")).load()
        manifest = pd.read_parquet(directory / "feature_manifest.parquet")
        index = pd.read_parquet(
            directory.parents[2] / "02_intermediate" / directory.name / "image_index.parquet"
        )
        index = index.set_index(index["image_id"].astype(str)).loc[embedding.index.astype(str)]
        index = index.reset_index(drop=True)
        values = embedding[manifest["feature"].tolist()].to_numpy(np.float32)
    index = index.assign(split=None)
    splits = transfer_splits(index, {**split_params, "repetitions": 1, "use_official": False})
    is_train = (splits["split"] == "train").to_numpy()
    return values, index["label"].to_numpy(np.int64), is_train, manifest["layer"].to_numpy(str)


def load(scale: str, embedding_dir: str | None):
    if scale in SCALES:
        n_images, n_classes, per_class, layer_sizes = SCALES[scale]
        return synthetic(n_images, n_classes, per_class, layer_sizes)
    if scale == "caltech101_real":
        if not SHARED_EMBEDDING.is_dir():
            raise SystemExit(f"{SHARED_EMBEDDING} absent: nothing to benchmark for {scale}")
        return real_embedding(SHARED_EMBEDDING, {"train_per_class": 30, "seed": 2018})
    per_class = 30 if "caltech101" in scale else None
    return real_embedding(Path(embedding_dir), {"train_per_class": per_class, "seed": 2018})


def evaluation_names(labels: np.ndarray) -> list[str]:
    return [f"c{k}" for k in range(int(labels.max()) + 1)]


def timed_evaluation(values, labels, is_train, layers, settings):
    names = evaluation_names(labels)
    start = time.perf_counter()
    evaluation = evaluate_split(values, labels, is_train, layers, names, settings, repetition=0)
    return evaluation, time.perf_counter() - start


def reference_settings(default: TransferSettings) -> TransferSettings:
    """Converged logistic regression (the fits that choose C too), C by the evaluation's own
    folds and criterion (mean held-out log-loss), grid widened as needed; in the row space
    wherever the training images are fewer than the features (exact, faster)."""
    classifier_module.ROW_SPACE_SHARE = 1.0
    return replace(
        default,
        classifier=LOGISTIC,
        logistic_regression=replace(
            default.logistic_regression,
            tol=1e-6,
            selection_relative_tol=0.0,
            relative_tol=0.0,
            max_iter=5000,
        ),
        c_selection=replace(default.c_selection, widen=6),
    )


def as_float64(data):
    """The probe's matrices in float64: on float32 ones scikit-learn's lbfgs stops where float32
    can no longer see the loss fall (max |gradient| about 1e-5)."""
    folds = tuple(
        replace(
            fold,
            values=fold.values.astype(np.float64),
            held_values=fold.held_values.astype(np.float64),
        )
        for fold in data.folds
    )
    return replace(
        data,
        folds=folds,
        train_values=data.train_values.astype(np.float64),
        test_values=data.test_values.astype(np.float64),
    )


ROW = ["embedding", "layer", "selection", "fraction", "draw"]


def reference_fits(inputs, default: TransferSettings, limit: float, workers: int) -> pd.DataFrame:
    """The reference on every row (layers, full network, FNE, every curve point of every
    ranking, baseline and random draw) whose training images x min(features, images) x classes
    <= limit, with the evaluation's own folds and statistics."""
    train_rows = np.flatnonzero(inputs.is_train)
    test_rows = np.flatnonzero(~inputs.is_train)
    n_features = inputs.values.shape[1]
    orders = [random_order(n_features, [default.seed, 0, d]) for d in range(default.random_draws)]
    folds = training_folds(inputs.labels[train_rows], default, 0)
    parts = [prepare(inputs, train_rows[f], train_rows[h], default, orders) for f, h in folds]
    train = prepare(inputs, train_rows, test_rows, default, orders)
    settings = reference_settings(default)
    n_classes = int(inputs.labels.max()) + 1
    jobs = embedding_jobs(inputs.layers, default)
    affordable = [
        job for job in jobs
        if train_rows.size * min(job.n_features(), train_rows.size) * n_classes <= limit
    ]  # fmt: skip
    rows = []
    for kind in KINDS:
        distinct = {job.key(): job for job in affordable if job.kind == kind}
        for part in (*parts, train):
            part.matrices(kind)

        def fit(job):
            data = as_float64(probe_data(job, parts, train))
            return fit_probe(data, LOGISTIC, settings, estimator=LogisticRegression)

        # One BLAS thread each: lbfgs's many small products ran 3 to 5 times slower on two.
        with blas_threads(1), ThreadPoolExecutor(max_workers=workers) as pool:
            fitted = dict(zip(distinct, pool.map(fit, distinct.values())))
        for job in (job for job in affordable if job.kind == kind):
            result = fitted[job.key()]
            accuracy, per_class = accuracies(inputs.labels[test_rows], result.predictions)
            rows.append(
                {
                    **{k: job.row[k] for k in ROW},
                    "reference": per_class,
                    "reference_accuracy": accuracy,
                    "reference_c": result.regularisation_c,
                    "reference_c_at_edge": result.c_at_grid_edge,
                }
            )
        for part in (*parts, train):
            part.release(kind)
    return pd.DataFrame(
        rows,
        columns=[*ROW, "reference", "reference_accuracy", "reference_c", "reference_c_at_edge"],
    )


def compare(default: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Every row the reference fitted: the evaluation's mean per-class accuracy (and
    accuracy) against the reference's; an empty table where the reference fitted none."""
    columns = [
        *ROW,
        "n_features",
        "mean_per_class_accuracy",
        "accuracy",
        "solver",
        "regularisation_c",
        "shrinkage",
    ]
    keyed = default[columns].astype({"draw": "float64"}).fillna({"draw": -1})
    reference = reference.astype({"draw": "float64"}).fillna({"draw": -1})
    for frame in (keyed, reference):
        for column in ("layer", "selection"):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), "")
        frame["fraction"] = frame["fraction"].astype("float64").fillna(-1.0)
    table = keyed.merge(reference, on=ROW, how="inner")
    table = table.rename(columns={"mean_per_class_accuracy": "default", "regularisation_c": "c"})
    table["difference"] = table["default"] - table["reference"]
    return table


def curve_table(results: pd.DataFrame) -> str:
    """Mean per-class accuracy of each selection at each fraction (random: the mean over its
    draws, and their standard deviation), continuous and three-valued; the winner."""
    curves = results[results["selection"].notna()]
    table = curves.pivot_table(
        index=["embedding", "fraction"], columns="selection", values="mean_per_class_accuracy"
    )
    random = curves[curves["selection"] == "random"]
    table["random_sd"] = random.groupby(["embedding", "fraction"])["mean_per_class_accuracy"].std()
    table["best"] = table.drop(columns="random_sd").idxmax(axis=1)
    dks = [c for c in table.columns if str(c).startswith("dks_")]
    table["best_dks_minus_random"] = table[dks].max(axis=1) - table["random"]
    if "anova_f" in table.columns:
        table["best_dks_minus_anova_f"] = table[dks].max(axis=1) - table["anova_f"]
    return table.round(4).to_string()


def c_stability(values, labels, is_train, layers, settings, first: pd.DataFrame) -> float:
    """The largest move of any row's test mean per-class accuracy over 3 fold seeds (the
    evaluation's and two more)."""
    runs = [first["mean_per_class_accuracy"].to_numpy()]
    for shift in (1, 2):
        c_selection = replace(settings.c_selection, seed=settings.c_selection.seed + shift)
        again, _ = timed_evaluation(
            values, labels, is_train, layers, replace(settings, c_selection=c_selection)
        )
        runs.append(again.results["mean_per_class_accuracy"].to_numpy())
    runs = np.array(runs)
    moves = runs.max(axis=0) - runs.min(axis=0)
    movers = first[[*ROW, "n_features"]].assign(
        **{f"seed_{k}": run for k, run in enumerate(runs)}, move=moves
    )
    movers = movers[movers["move"] > 0.005].sort_values("move", ascending=False)
    with pd.option_context("display.width", 250, "display.max_rows", 300):
        print(f"rows that moved by more than 0.005 over the 3 fold seeds: {len(movers)} of "
              f"{len(moves)}\n{movers.round(4).to_string(index=False)}")  # fmt: skip
    return float(np.max(moves))


def bench_settings(args) -> TransferSettings:
    settings = TransferSettings()
    if args.rankings:
        settings = replace(settings, rankings=tuple(args.rankings))
    if args.relative_tol is not None:
        solver = replace(settings.logistic_regression, relative_tol=args.relative_tol)
        settings = replace(settings, logistic_regression=solver)
    if args.classifier:
        settings = replace(settings, classifier=args.classifier)
    if args.force_scale_path:
        settings = replace(settings, classifier=SCALE_PATH)
    if args.folds:
        settings = replace(settings, c_selection=replace(settings.c_selection, folds=args.folds))
    if args.repeats:
        repeated = replace(settings.c_selection, repeats=args.repeats)
        settings = replace(settings, c_selection=repeated)
    if args.draws:
        settings = replace(settings, random_draws=args.draws)
    if args.walk_min_features:
        discriminant = replace(settings.discriminant, walk_min_features=args.walk_min_features)
        settings = replace(settings, discriminant=discriminant)
    return settings


def walk_check(values, labels, is_train, layers, settings, first: pd.DataFrame) -> None:
    """The discriminant's walked rows against the same evaluation scoring the whole shrinkage
    grid on every row: the rows whose shrinkage differs and the largest move of a row's test
    mean per-class accuracy."""
    grid_only = replace(settings.discriminant, walk_min_features=10**9)
    again, wall = timed_evaluation(
        values, labels, is_train, layers, replace(settings, discriminant=grid_only)
    )
    both = first[[*ROW, "n_features", "shrinkage", "mean_per_class_accuracy"]].assign(
        grid_shrinkage=again.results["shrinkage"].to_numpy(),
        grid_accuracy=again.results["mean_per_class_accuracy"].to_numpy(),
    )
    own = settings.discriminant
    one_kind = (both["embedding"] == "fne") | (both["n_features"] > own.root_raw_max_features)
    walked = (both["n_features"] >= own.walk_min_features) & one_kind
    both["move"] = (both["mean_per_class_accuracy"] - both["grid_accuracy"]).abs()
    differ = both[both["shrinkage"] != both["grid_shrinkage"]]
    with pd.option_context("display.width", 250, "display.max_rows", 300):
        print(f"walked against the whole grid ({wall:.0f} s): {len(differ)} of {int(walked.sum())} "
              f"walked rows chose another shrinkage\n{differ.round(4).to_string(index=False)}")  # fmt: skip
    print(
        f"WALK rows={int(walked.sum())} differ={len(differ)} "
        f"max_move={float(both['move'].max()):.4f}"
    )


def report_evaluation(evaluation, wall: float, peak_gib: float) -> None:
    seconds = evaluation.fitted["seconds"]
    results = evaluation.results
    print(
        f"whole evaluation: {wall:.1f} s wall, {time.process_time():.1f} s CPU so far "
        f"({len(results)} result rows; standardisation + rankings "
        f"{seconds['standardisation_and_rankings']:.1f} s, classifiers {seconds['classifiers']:.1f} s); "
        f"peak resident {peak_gib:.2f} GiB; load average {os.getloadavg()}; solver: "
        f"{results['solver'].value_counts().to_dict()}; C at grid edge: "
        f"{int(results['c_at_grid_edge'].sum())} of {len(results)} rows; not converged: "
        f"{int((~results['converged']).sum())}",
        flush=True,
    )
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(curve_table(results))


def cached_reference(args, scale: str, settings, inputs, workers: int) -> pd.DataFrame:
    """The reference's rows, from --reference-cache where it holds this scale's under the same
    folds, draws and limit (the classifier timed does not change them), else fitted (and
    stored there). --reference-folds: the reference's C chosen on that many folds (same seed)
    instead of the evaluation's count."""
    if args.reference_folds:
        folds = replace(settings.c_selection, folds=args.reference_folds)
        settings = replace(settings, c_selection=folds)
    key = (
        f"{scale} folds={settings.c_selection.folds} seed={settings.c_selection.seed} "
        f"draws={settings.random_draws} rankings={','.join(settings.rankings)} "
        f"limit={args.reference_limit:g}"
    )
    cache = Path(args.reference_cache) if args.reference_cache else None
    if cache is not None and cache.exists():
        stored = pd.read_csv(cache)
        if stored.pop("key").iloc[0] != key:
            raise SystemExit(f"{cache}: another scale or protocol than {key!r}")
        print(f"reference rows read from {cache} ({key})")
        return stored.astype({"layer": object, "selection": object})
    reference = reference_fits(inputs, settings, args.reference_limit, workers)
    if cache is not None:
        reference.assign(key=key).to_csv(cache, index=False)
    return reference


def scale_path_reference(directory: Path) -> pd.DataFrame:
    """The reference rows bench_scale_path.py cached for caltech101_real (a JSON per row, by
    the same converged, tuned logistic regression on the same training split, its C chosen by
    that script's own 5 folds): the layers, whole embeddings and DKS / ANOVA-F curve points,
    whose columns on the training split are this evaluation's. Its random draws are other
    features than this evaluation's draws of the same number: left out."""
    rows = []
    for path in sorted(Path(directory).glob("*.json")):
        parts = path.stem.split("-")
        if parts[0] == "layer":
            row = {"embedding": "layer", "layer": parts[1], "selection": None, "fraction": None}
        elif len(parts) == 1:
            row = {"embedding": parts[0], "layer": None, "selection": None, "fraction": None}
        elif parts[1].startswith("random"):
            continue
        else:
            row = {"embedding": parts[0], "layer": None, "selection": parts[1],
                   "fraction": float(parts[2])}  # fmt: skip
        stored = json.loads(path.read_text())
        rows.append({**row, "draw": None, "reference": stored["mean_per_class"],
                     "reference_accuracy": stored["accuracy"], "reference_c": stored["c"],
                     "reference_c_at_edge": False})  # fmt: skip
    if not rows:
        raise SystemExit(f"{directory}: no cached reference row (bench_scale_path.py --cache)")
    print(f"reference: {len(rows)} rows of bench_scale_path.py's cache {directory} (random "
          "draws left out: other features)")  # fmt: skip
    return pd.DataFrame(rows).astype({"layer": object, "selection": object})


def run_one(scale: str, args) -> None:
    begin_load = os.getloadavg()
    values, labels, is_train, layers = load(scale, args.embedding)
    print(
        f"\n=== {scale}: {values.shape[0]} images, {values.shape[1]} features in "
        f"{len(set(layers))} layers, {labels.max() + 1} classes, {int(is_train.sum())} train / "
        f"{int((~is_train).sum())} test; load average {begin_load}",
        flush=True,
    )
    settings = bench_settings(args)
    evaluation, wall = timed_evaluation(values, labels, is_train, layers, settings)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    report_evaluation(evaluation, wall, peak_gib)
    shortfall = float("nan")
    if args.reference:
        start = time.perf_counter()
        inputs = check_inputs(values, labels, is_train, layers, evaluation_names(labels), None)
        workers = settings.workers or os.cpu_count() or 1
        if args.scale_path_reference:
            reference = scale_path_reference(args.scale_path_reference)
        else:
            reference = cached_reference(args, scale, settings, inputs, workers)
        table = compare(evaluation.results, reference)
        with pd.option_context("display.width", 250, "display.max_rows", 1000):
            shown = table.round(4).to_string(index=False) if len(table) else "(no row)"
            print(
                f"default against the reference, mean per-class accuracy ("
                f"{time.perf_counter() - start:.0f} s; load average {os.getloadavg()}):\n{shown}"
            )
        if len(table):
            shortfall = max(0.0, float((-table["difference"]).max()))
        else:
            print(f"the reference fitted no row (--reference-limit {args.reference_limit:g})")
    else:
        print("reference not run (--no-reference)")
    if args.walk_check:
        walk_check(values, labels, is_train, layers, settings, evaluation.results)
    stability = float("nan")
    if args.c_stability:
        stability = c_stability(values, labels, is_train, layers, settings, evaluation.results)
    print(
        f"RESULT {scale} wall_s={wall:.1f} peak_gib={peak_gib:.2f} "
        f"max_shortfall={shortfall:.4f} c_stability={stability:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="a scale, caltech101_real, or a name")
    parser.add_argument("--embedding", default=None, help="a kedro run's embedding folder")
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--reference-limit", type=float, default=REFERENCE_LIMIT)
    parser.add_argument(
        "--reference-cache",
        default=None,
        help="a CSV file: the reference's rows read from it where it exists, else written to it",
    )
    parser.add_argument(
        "--reference-folds",
        type=int,
        default=None,
        help="the reference's C on this many folds (default: the evaluation's c_selection.folds)",
    )
    parser.add_argument(
        "--scale-path-reference",
        default=None,
        help="caltech101_real only: bench_scale_path.py's --cache folder as the reference",
    )
    parser.add_argument("--classifier", default=None, help="transfer.classifier to time")
    parser.add_argument("--relative-tol", type=float, default=None, help="its relative_tol")
    parser.add_argument(
        "--force-scale-path",
        action="store_true",
        help=f"transfer.classifier: {SCALE_PATH}, the large-scale path, on every row",
    )
    parser.add_argument("--folds", type=int, default=None, help="c_selection.folds")
    parser.add_argument("--draws", type=int, default=None, help="random_draws")
    parser.add_argument("--repeats", type=int, default=None, help="c_selection.repeats")
    parser.add_argument(
        "--c-stability",
        action="store_true",
        help="rerun with two more fold seeds: c_stability, the largest move of a row (3x time)",
    )
    parser.add_argument(
        "--walk-min-features",
        type=int,
        default=None,
        help="transfer.discriminant.walk_min_features (rows this wide walk the shrinkage grid)",
    )
    parser.add_argument(
        "--walk-check",
        action="store_true",
        help="rerun scoring the whole shrinkage grid on every row: the walk's error (2x time)",
    )
    parser.add_argument(
        "--rankings",
        nargs="+",
        choices=RANKINGS,
        help="the DKS rankings on the curve (default: all); `--rankings dks_count` fits the 43 "
        "rows the transfer evaluation had before dks_mean_abs and dks_cover joined the curve",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.only:
        run_one(args.only, args)
        return
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()}", flush=True)
    for scale in (*REAL, *SCALES):
        command = [sys.executable, __file__, "--only", scale]
        command += [] if args.reference else ["--no-reference"]
        command += ["--reference-limit", str(args.reference_limit)]
        command += ["--reference-folds", str(args.reference_folds)] if args.reference_folds else []
        command += ["--rankings", *args.rankings] if args.rankings else []
        command += ["--force-scale-path"] if args.force_scale_path else []
        command += ["--c-stability"] if args.c_stability else []
        subprocess.run(command, check=False)


if __name__ == "__main__":
    main()
