"""Benchmark of the large-scale transfer classifier (transfer/discriminant.py): its accuracy on
every row of a real evaluation against a converged, tuned logistic regression, and its time and
memory at caltech256 and ImageNet sizes.

    python benchmarks/bench_scale_path.py accuracy --cache DIR      # real Caltech-101
    python benchmarks/bench_scale_path.py accuracy --cache DIR --cached-only --rows 'layer-*'
    python benchmarks/bench_scale_path.py timing --scale caltech256 # synthetic, classifiers only

`accuracy`: on the shared real Caltech-101 embedding (../shared/embeddings, VGG16 conv, 30
training images per class, the rest test, as the project's caltech101 environment splits it),
every row of an evaluation: each layer, the full network, the FNE (standardised values > 0.15
-> 1, < -0.25 -> -1, else 0) and every curve point (the DKS rankings dks_count, dks_mean_abs,
dks_cover, ANOVA-F and `--draws` random draws at 1, 2, 5, 10, 25 and 50% of the features;
continuous and FNE) is fitted by
(a) the scale path: LDA (discriminant.py) on the standardised square roots of the raw values
    (ROOT; the FNE's values as they are), its shrinkage chosen from SHRINKAGE_GRID by stratified
    5-fold cross-validation on the training split (`--criterion`: held-out accuracy first, ties
    by log-loss, as the production classifier's key; or the log-loss alone), refitted on it.
    `--representation auto` (the default): on continuous rows of at most AUGMENT_LIMIT features
    the same folds also score LDA on the square roots and the raw values side by side
    (ROOT_RAW, each standardised) and keep the better held-out key, ties to ROOT;
(b) the reference: scikit-learn's LogisticRegression (multinomial, lbfgs, float64, tol 1e-6,
    up to 10,000 iterations; in the row space where a matrix has fewer images than features,
    the same solution), C chosen from C_GRID by the same folds' mean held-out log-loss,
    refitted.
Both under one protocol: in each fold the standardisation, the FNE, the DKS rankings
(transfer/features.py's dks_ranking, 100 bins, t+ / t- from one label permutation) and the
ANOVA-F ranking (sklearn.feature_selection.f_classif) are refitted on the fold's training
images; random draw r is `random_order(features, [seed, r])` in every part. The reference is
slow (hours on 2 cores): each row's result is cached under --cache (a JSON per row, checked
against the row's columns in every part), so reruns fit only what changed; `--rows` (shell
patterns on the row keys, e.g. 'layer-conv1_*', 'fne-random[0-2]-0.01') and `--cached-only`
(no new reference fit) measure a subset. Prints each row's two test accuracies (and mean
per-class accuracies), the shortfall (reference minus scale path) and the representation
chosen, then exactly `RESULT scale_path max_shortfall=<x> rows=<n> wall_s=<s>` (wall_s: the
scale path's whole classifier part, Gram matrices included).

`timing`: the classifier part of one whole evaluation at caltech256's size (15,360 training
images, 12,416 features in VGG16's 15 layers, 256 classes; bench_transfer.py's synthetic
images) or ImageNet's (25,000 x 12,416 x 1,000): the 185 rows above with 10 random draws, both
kinds, 5 folds, the shrinkage searched as in `accuracy`, test predictions. The rankings are
seeded permutations per part (the classifier's cost does not depend on which columns a
ranking picks, only on how many). Prints wall and CPU time, peak resident memory and the load
average, then `RESULT scale_path_timing scale=<s> wall_s=<x> cpu_s=<y> peak_gib=<z>`.

This script's protocol code is a small stand-in for the comparison: the transfer evaluation
(engineer `transfer`, transfer/evaluation.py) owns the production protocol.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import multiprocessing
import os
import resource
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.linalg import cho_factor, solve_triangular
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from cnn_feature_behavior.transfer import discriminant, ridge
from cnn_feature_behavior.transfer.classifier import accuracies, search_c
from cnn_feature_behavior.transfer.discriminant import DiscriminantData
from cnn_feature_behavior.transfer.embeddings import Standardisation, fne_values
from cnn_feature_behavior.transfer.features import RANKINGS, curve_sizes, dks_ranking, random_order

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_transfer import SCALES, SHARED_EMBEDDING, real_embedding, synthetic  # noqa: E402
from load_average import load_average_line  # noqa: E402

SEED = 2018
FOLDS = 5
FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5)
ANOVA_F = "anova_f"
SELECTIONS = (*RANKINGS, ANOVA_F)
CONTINUOUS, FNE = "full_network", "fne"
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
# The continuous values a classifier sees, each standardised on the part's training images: the
# raw values (the reference's), their square roots, or both side by side (every feature twice).
RAW, ROOT, ROOT_RAW, AUTO = "raw", "root", "root+raw", "auto"
# AUTO: each continuous row's folds choose between ROOT and, on rows of at most this many
# features (the systems of twice their width stay small), ROOT_RAW.
AUGMENT_LIMIT = 1024
SCALINGS = {
    ROOT: (lambda part: part.root_standardisation,),
    ROOT_RAW: (lambda part: part.root_standardisation, lambda part: part.standardisation),
}
# How the folds rank shrinkage values: held-out accuracy first, ties by log-loss (the production
# classifier's key), or the log-loss alone.
CRITERIA = ("accuracy", "log_loss")
SHRINKAGE_GRID = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.2, 0.4, 0.7, 1.0)
# The refit at the chosen C converges to max |gradient| <= 1e-6; the fold fits, which only rank
# the C values by held-out log-loss, to scikit-learn's default 1e-4.
REFERENCE_TOL, REFERENCE_FOLD_TOL, REFERENCE_MAX_ITER = 1e-6, 1e-4, 10_000


# --- the protocol -----------------------------------------------------------------------------


@dataclass
class Part:
    """A fold's training images with its held-out images, or the training split with the test
    images; what is fitted on its training images: standardisations and rankings."""

    train_rows: np.ndarray  # positions in the dataset
    scored_rows: np.ndarray
    standardisation: Standardisation  # of the raw values (the reference's, and the FNE's)
    root_standardisation: Standardisation  # of their square roots (the scale path's)
    orders: dict[str, np.ndarray]


def prepare_part(values, labels, train_rows, scored_rows, names, rankings=True) -> Part:
    """Standardisations and rankings fitted on `train_rows`; `rankings=False`: seeded
    permutations in their place (for timing)."""
    train = values[train_rows]
    if rankings:
        dks = dks_ranking(train, labels[train_rows], names, bins=100, repetitions=1, seed=SEED)
        score, _ = f_classif(train, labels[train_rows])
        score = np.nan_to_num(score, nan=-np.inf)  # a constant feature last
        position = np.arange(train.shape[1])
        orders = {**dks.orders, ANOVA_F: np.lexsort((position, -score))}
    else:
        rng = np.random.default_rng([SEED, int(train_rows.size)])
        orders = {name: rng.permutation(train.shape[1]) for name in SELECTIONS}
    return Part(
        train_rows, scored_rows, Standardisation.fit(train),
        Standardisation.fit(signed_root(train)), orders,
    )  # fmt: skip


def signed_root(values: np.ndarray) -> np.ndarray:
    """sign(x) sqrt(|x|), float32 (ReLU features: their square roots)."""
    return (np.sign(values) * np.sqrt(np.abs(values))).astype(np.float32)


def parts_of(values, labels, is_train, names, rankings=True) -> tuple[list[Part], Part]:
    """The 5 stratified folds of the training split and the whole split."""
    train_rows, test_rows = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    splitter = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    folds = [
        prepare_part(values, labels, train_rows[kept], train_rows[held], names, rankings)
        for kept, held in splitter.split(train_rows, labels[train_rows])
    ]
    return folds, prepare_part(values, labels, train_rows, test_rows, names, rankings)


@dataclass(frozen=True)
class Row:
    """One result row: a layer, the full network or FNE, or a curve point."""

    kind: str
    layer: str | None = None
    selection: str | None = None  # a ranking, or "random"
    draw: int | None = None
    fraction: float | None = None
    k: int | None = None  # features kept on a curve

    @property
    def key(self) -> str:
        if self.layer:
            return f"layer-{self.layer}"
        if self.selection is None:
            return self.kind
        name = self.selection if self.draw is None else f"random{self.draw}"
        return f"{self.kind}-{name}-{self.fraction:g}"

    def columns(self, part: Part, layers: np.ndarray) -> np.ndarray | None:
        if self.layer:
            return np.flatnonzero(layers == self.layer)
        if self.selection is None:
            return None
        if self.draw is not None:
            order = random_order(layers.size, [SEED, self.draw])
        else:
            order = part.orders[self.selection]
        return np.sort(order[: self.k])


def evaluation_rows(layers: np.ndarray, draws: int) -> list[Row]:
    rows = [Row(CONTINUOUS, layer=str(layer)) for layer in dict.fromkeys(layers)]
    rows += [Row(CONTINUOUS), Row(FNE)]
    for kind in (CONTINUOUS, FNE):
        for selection, draw in [
            *((s, None) for s in SELECTIONS),
            *(("random", r) for r in range(draws)),
        ]:
            for fraction, k in curve_sizes(layers.size, FRACTIONS):
                rows.append(Row(kind, selection=selection, draw=draw, fraction=fraction, k=k))
    return rows


def matrices(part: Part, values, kind: str, representation: str = RAW, columns=None):
    """(training, scored) matrices of a part: the FNE, or the standardised continuous values in
    `representation` (RAW, ROOT, ROOT_RAW); of `columns` only where given (continuous)."""
    if columns is not None:
        part = Part(
            part.train_rows, part.scored_rows,
            *(Standardisation(fitted.mean[columns], fitted.scale[columns])
              for fitted in (part.standardisation, part.root_standardisation)),
            orders={},
        )  # fmt: skip
        values = values[:, columns]
    if kind == FNE:
        train = fne_values(part.standardisation.apply(values[part.train_rows]))
        return train, fne_values(part.standardisation.apply(values[part.scored_rows]))
    pairs = []
    if representation in (ROOT, ROOT_RAW):
        fitted = part.root_standardisation
        pairs.append((
            fitted.apply(signed_root(values[part.train_rows])),
            fitted.apply(signed_root(values[part.scored_rows])),
        ))  # fmt: skip
    if representation in (RAW, ROOT_RAW):
        fitted = part.standardisation
        pairs.append(
            (fitted.apply(values[part.train_rows]), fitted.apply(values[part.scored_rows]))
        )
    if len(pairs) == 1:
        return pairs[0]
    return tuple(np.hstack(matrices) for matrices in zip(*pairs, strict=True))


def columns_digest(row: Row, parts: list[Part], layers: np.ndarray) -> str:
    digest = hashlib.sha256()
    for part in parts:
        columns = row.columns(part, layers)
        digest.update(b"all" if columns is None else columns.astype(np.int64).tobytes())
        digest.update(part.train_rows.astype(np.int64).tobytes())
    return digest.hexdigest()[:16]


# --- the reference: converged, tuned logistic regression --------------------------------------


def row_space(train: np.ndarray):
    """(design, to_weights): the Cholesky factor L of train train^T as the design where the
    images are fewer than the features (the same optimum: the weights lie in the rows' span)."""
    if train.shape[0] >= train.shape[1]:
        return train, lambda coef: coef.T
    lower = np.tril(cho_factor(train @ train.T, lower=True)[0])

    def to_weights(coef: np.ndarray) -> np.ndarray:
        return train.T @ solve_triangular(lower, coef.T, trans="T", lower=True)

    return lower, to_weights


def logistic_path(train, labels, scored, grid, tol) -> Iterator[tuple[float, np.ndarray, bool]]:
    """(C, scored images' class probabilities) along the grid, each fit from the last."""
    design, to_weights = row_space(train)
    model = LogisticRegression(C=grid[0], tol=tol, max_iter=REFERENCE_MAX_ITER,
                               warm_start=True)  # fmt: skip
    for c in grid:
        model.set_params(C=c)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(design, labels)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        scores = scored @ to_weights(model.coef_) + model.intercept_
        scores -= scores.max(axis=1, keepdims=True)
        probabilities = np.exp(scores)
        yield c, probabilities / probabilities.sum(axis=1, keepdims=True), converged


def reference_row(row: Row, folds: list[Part], whole: Part, values, labels, layers) -> dict:
    """C by the folds' mean held-out log-loss (ties to the smaller C), refitted on the split."""
    start = time.process_time()
    classes = np.unique(labels[whole.train_rows])
    losses = np.zeros((len(folds), len(C_GRID)))
    unconverged = 0
    for f, part in enumerate(folds):
        train, held = (m.astype(np.float64) for m in matrices(part, values, row.kind))
        columns = row.columns(part, layers)
        if columns is not None:
            train, held = train[:, columns], held[:, columns]
        for j, (_, probabilities, converged) in enumerate(
            logistic_path(train, labels[part.train_rows], held, C_GRID, REFERENCE_FOLD_TOL)
        ):
            losses[f, j] = log_loss(labels[part.scored_rows], probabilities, labels=classes)
            unconverged += not converged
    chosen = C_GRID[int(np.argmin(losses.mean(axis=0)))]
    train, test = (m.astype(np.float64) for m in matrices(whole, values, row.kind))
    columns = row.columns(whole, layers)
    if columns is not None:
        train, test = train[:, columns], test[:, columns]
    _, probabilities, converged = next(
        logistic_path(train, labels[whole.train_rows], test, (chosen,), REFERENCE_TOL)
    )
    predictions = classes[np.argmax(probabilities, axis=1)]
    accuracy, per_class = accuracies(labels[whole.scored_rows], predictions)
    return {
        "c": chosen, "accuracy": accuracy, "mean_per_class": per_class,
        "fold_log_loss": losses.tolist(), "cpu_s": time.process_time() - start,
        "unconverged_fits": unconverged + (not converged),
    }  # fmt: skip


_SHARED: dict = {}


def _reference_worker(row: Row) -> tuple[Row, dict]:
    with threadpool_limits(limits=1):
        shared = _SHARED
        return row, reference_row(row, shared["folds"], shared["whole"], shared["values"],
                                  shared["labels"], shared["layers"])  # fmt: skip


def reference_results(rows, folds, whole, values, labels, layers, cache: Path, workers: int):
    """Every row's reference, from the cache where its columns are unchanged; `workers=0`:
    the cached rows only, nothing fitted."""
    cache.mkdir(parents=True, exist_ok=True)
    found, missing = {}, []
    for row in rows:
        path = cache / f"{row.key}.json"
        digest = columns_digest(row, [*folds, whole], layers)
        if path.is_file():
            stored = json.loads(path.read_text())
            # Results of fold fits converged further (absent: 1e-6) stand.
            tight = stored.get("fold_tol", 1e-6) <= REFERENCE_FOLD_TOL
            if stored.get("digest") == digest and stored.get("c_grid") == list(C_GRID) and tight:
                found[row] = stored
                continue
        missing.append(row)
    print(
        f"reference: {len(found)} rows cached, {len(missing) if workers else 0} to fit", flush=True
    )
    if not workers:
        return found
    _SHARED.update(folds=folds, whole=whole, values=values, labels=labels, layers=layers)
    # The narrowest rows first: their results arrive early.
    missing.sort(key=lambda row: row_width(row, layers))
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for row, result in pool.imap_unordered(_reference_worker, missing):
            result.update(
                digest=columns_digest(row, [*folds, whole], layers),
                c_grid=list(C_GRID),
                fold_tol=REFERENCE_FOLD_TOL,
            )
            (cache / f"{row.key}.json").write_text(json.dumps(result))
            found[row] = result
            print(f"  reference {row.key}: {result['accuracy']:.4f} at C = {result['c']:g} "
                  f"({result['cpu_s']:.0f} s CPU)", flush=True)  # fmt: skip
    return found


def row_width(row: Row, layers: np.ndarray) -> int:
    if row.layer:
        return int(np.sum(layers == row.layer))
    return layers.size if row.k is None else row.k


# --- the scale path: LDA, shrinkage by the same folds -----------------------------------------


@dataclass(frozen=True)
class Split:
    """The parts and the data a classifier is fitted on."""

    folds: list[Part]
    whole: Part
    values: np.ndarray
    labels: np.ndarray
    classes: np.ndarray


class KindData:
    """One kind's LDA data on the training split and on each fold, with the matrices that
    score them (held-out images, test images): of every feature, or of the sorted `subset`
    (AUTO's ROOT_RAW candidate for one narrow row: the whole matrix twice would not fit at
    caltech256's size)."""

    def __init__(self, kind, split: Split, threads, representation, subset=None):
        self.kind, self.representation, self.subset = kind, representation, subset
        self.copies = 2 if kind == CONTINUOUS and representation == ROOT_RAW else 1
        whole, labels = split.whole, split.labels
        train, self.test = matrices(whole, split.values, kind, representation, subset)
        self.whole = DiscriminantData.of(train, labels[whole.train_rows], split.classes, threads)
        self.folds, self.held, self.scales = [], [], []
        position = {row: p for p, row in enumerate(whole.train_rows)}
        for part in split.folds:
            held = np.array([position[row] for row in part.scored_rows])
            if kind == FNE:  # the fold's own FNE thresholds: its own values
                fold_train, fold_held = matrices(part, split.values, kind)
                fold = DiscriminantData.of(
                    fold_train, labels[part.train_rows], split.classes, threads
                )
                scale = None
            else:  # the fold's standardisation is a rescaling of the split's (discriminant.py)
                fold, fold_held = self.whole.without(held), train[held]
                kept = slice(None) if subset is None else subset
                scale = np.concatenate([
                    fitted(whole).scale[kept] / fitted(part).scale[kept]
                    for fitted in SCALINGS[representation]
                ])  # fmt: skip
            self.folds.append(fold)
            self.held.append((fold_held, labels[part.scored_rows]))
            self.scales.append(scale)

    def columns(self, columns: np.ndarray | None) -> np.ndarray | None:
        """A row's columns of the features in this data's matrices (each feature's copies)."""
        if columns is not None and self.subset is not None:
            columns = np.searchsorted(self.subset, columns)
        if columns is None or self.copies == 1:
            return columns
        width = self.test.shape[1] // self.copies
        return np.concatenate([columns + copy * width for copy in range(self.copies)])


def scale_path_row(row: Row, data: KindData, folds, whole, layers, hint, criterion: str) -> dict:
    """Shrinkage by the folds' held-out `criterion` (CRITERIA), refitted; the test predictions.

    As ridge's C (classifier.select_ridge_c): the whole grid where a factorisation is cheap,
    a walk from `hint` (the last large system's choice) on large systems, whose ranking fits
    factorise in float32."""
    start = time.process_time()
    systems = []
    for f, part in enumerate(folds):
        columns = data.columns(row.columns(part, layers))
        held, held_labels = data.held[f]
        held = held if columns is None else held[:, columns]
        systems.append((data.folds[f].system(columns, data.scales[f]), held, held_labels))
    large = systems[0][0].n_features >= ridge.THREADED_SYSTEM
    dtype = np.float32 if large else np.float64

    def score(shrinkage: float) -> tuple[float, float]:
        correct, losses = 0, []
        for system, held, held_labels in systems:
            model = system.fit(shrinkage, dtype)
            scores = model.scores(held)
            correct += int(np.sum(model.classes[np.argmax(scores, axis=1)] == held_labels))
            losses.append(discriminant.log_loss(scores, model.classes, held_labels))
        accuracy = correct / sum(held_labels.size for _, _, held_labels in systems)
        if criterion == "log_loss":
            return -float(np.mean(losses)), 0.0
        return accuracy, -float(np.mean(losses))

    chosen, keys, _ = search_c(
        score, SHRINKAGE_GRID, 0, start=hint if large else None, exhaustive=not large
    )
    columns = data.columns(row.columns(whole, layers))
    model = data.whole.system(columns).fit(chosen)
    test = data.test if columns is None else data.test[:, columns]
    return {
        "shrinkage": chosen, "predictions": model.predict(test), "large": large,
        "key": keys[chosen], "representation": data.representation,
        "fits": len(keys) * len(folds) + 1, "cpu_s": time.process_time() - start,
    }  # fmt: skip


def union(row: Row, split: Split, layers: np.ndarray) -> np.ndarray:
    """The row's columns in any part (a ranking's differ between folds), sorted."""
    return np.unique(np.concatenate([row.columns(p, layers) for p in [*split.folds, split.whole]]))


@dataclass(frozen=True)
class ScalePathSettings:
    threads: int | None = None  # BLAS threads
    criterion: str = CRITERIA[0]
    representation: str = AUTO  # of the continuous values; AUTO: the folds choose per row


def scale_path_results(rows, folds, whole, values, labels, layers, settings: ScalePathSettings):
    """Each row's result; under AUTO, of the representation with the better held-out key (ties
    to ROOT)."""
    classes = np.unique(labels[whole.train_rows])
    results, hint = {}, {}
    for kind in sorted({row.kind for row in rows}, key=(CONTINUOUS, FNE).index):
        auto = kind == CONTINUOUS and settings.representation == AUTO
        name = FNE if kind == FNE else ROOT if auto else settings.representation
        split = Split(folds, whole, values, labels, classes)
        every = [KindData(kind, split, settings.threads, name)]
        for row in (row for row in rows if row.kind == kind):
            found = []
            narrow = auto and row_width(row, layers) <= AUGMENT_LIMIT
            extra = [KindData(kind, split, settings.threads, ROOT_RAW, union(row, split, layers))
                     ] if narrow else []  # fmt: skip
            for data in every + extra:
                found.append(scale_path_row(row, data, folds, whole, layers,
                                            hint.get(data.representation), settings.criterion))  # fmt: skip
                if found[-1]["large"]:
                    hint[data.representation] = found[-1]["shrinkage"]
            results[row] = max(found, key=lambda result: result["key"])
            results[row]["fits"] = sum(result["fits"] for result in found)
        del every
    return results


# --- the modes --------------------------------------------------------------------------------


def accuracy_mode(args) -> None:
    if not SHARED_EMBEDDING.is_dir():
        raise SystemExit(f"{SHARED_EMBEDDING} absent: no real embedding to measure on")
    load_before = os.getloadavg()
    values, labels, is_train, layers = real_embedding(
        SHARED_EMBEDDING, {"train_per_class": 30, "seed": SEED}
    )
    names = [f"c{k}" for k in range(int(labels.max()) + 1)]
    folds, whole = parts_of(values, labels, is_train, names)
    rows = selected(evaluation_rows(layers, args.draws), args.rows)
    print(f"real Caltech-101: {values.shape[1]} features, {int(is_train.sum())} train / "
          f"{int((~is_train).sum())} test, {len(rows)} rows, {FOLDS} folds", flush=True)  # fmt: skip
    reference = {}
    if not args.no_reference:
        reference = reference_results(
            rows, folds, whole, values, labels, layers, Path(args.cache),
            0 if args.cached_only else args.workers,
        )  # fmt: skip
        if args.cached_only:
            rows = [row for row in rows if row in reference]
    if args.reference_only:
        return
    wall, cpu = time.perf_counter(), time.process_time()
    fast = scale_path_results(rows, folds, whole, values, labels, layers, settings_of(args))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    test_labels = labels[whole.scored_rows]
    shortfalls = []
    print(f"{'row':34s} {'features':>8s} {'LDA':>7s} {'LR':>7s} {'short':>7s}   "
          f"{'LDA pc':>7s} {'LR pc':>7s}  shrinkage  C      values")  # fmt: skip
    for row in rows:
        accuracy, per_class = accuracies(test_labels, fast[row]["predictions"])
        line = f"{row.key:34s} {row_width(row, layers):8d} {accuracy:7.4f}"
        if row in reference:
            ref = reference[row]
            shortfalls.append(ref["accuracy"] - accuracy)
            line += (f" {ref['accuracy']:7.4f} {shortfalls[-1]:+7.4f}   {per_class:7.4f} "
                     f"{ref['mean_per_class']:7.4f}  {fast[row]['shrinkage']:<9g}  {ref['c']:<6g} "
                     f"{fast[row]['representation']}")  # fmt: skip
        print(line, flush=True)
    shortfall = max(0.0, max(shortfalls)) if shortfalls else float("nan")
    if shortfalls:
        print(f"shortfall over {len(shortfalls)} rows: max {max(shortfalls):+.4f}, "
              f"min {min(shortfalls):+.4f} (LDA above), mean {np.mean(shortfalls):+.4f}; "
              f"over 0.02 on {sum(x > 0.02 for x in shortfalls)}")  # fmt: skip
    print(f"scale path: {wall:.1f} s wall, {cpu:.1f} s CPU; "
          f"{load_average_line(load_before, os.getloadavg())}")  # fmt: skip
    print(
        f"RESULT scale_path max_shortfall={shortfall:.4f} rows={len(shortfalls)} wall_s={wall:.1f}"
    )


def selected(rows: list[Row], patterns: list[str] | None) -> list[Row]:
    """The rows whose key matches one of the shell patterns (all rows without patterns)."""
    if not patterns:
        return rows
    kept = [row for row in rows if any(fnmatch.fnmatchcase(row.key, p) for p in patterns)]
    if not kept:
        raise SystemExit(f"no row matches {patterns}; keys look like {rows[0].key!r}, "
                         f"'full_network-anova_f-0.01', 'fne-random3-0.02'")  # fmt: skip
    return kept


def timing_mode(args) -> None:
    load_before = os.getloadavg()
    n_images, n_classes, per_class, layer_sizes = SCALES[args.scale]
    values, labels, is_train, layers = synthetic(n_images, n_classes, per_class, layer_sizes)
    folds, whole = parts_of(values, labels, is_train, None, rankings=False)
    rows = evaluation_rows(layers, 10)
    print(f"{args.scale}: {values.shape[1]} features, {int(is_train.sum())} train / "
          f"{int((~is_train).sum())} test, {n_classes} classes, {len(rows)} rows, {FOLDS} folds; "
          f"peak before {peak_gib():.2f} GiB", flush=True)  # fmt: skip
    wall, cpu = time.perf_counter(), time.process_time()
    results = scale_path_results(rows, folds, whole, values, labels, layers, settings_of(args))
    fits = sum(result["fits"] for result in results.values())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(load_average_line(load_before, os.getloadavg()))
    print(f"{fits} factorisations")
    print(f"RESULT scale_path_timing scale={args.scale} wall_s={wall:.1f} cpu_s={cpu:.1f} "
          f"peak_gib={peak_gib():.2f}")  # fmt: skip


def settings_of(args) -> ScalePathSettings:
    return ScalePathSettings(args.threads, args.criterion, args.representation)


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    accuracy = modes.add_parser("accuracy", help="real Caltech-101 against the reference")
    accuracy.add_argument("--cache", required=True, help="folder of the reference's results")
    accuracy.add_argument("--draws", type=int, default=10, help="random draws per size")
    accuracy.add_argument("--workers", type=int, default=2, help="reference fits at once")
    accuracy.add_argument("--no-reference", action="store_true", help="the scale path alone")
    accuracy.add_argument("--reference-only", action="store_true", help="fill the cache only")
    accuracy.add_argument("--cached-only", action="store_true",
                          help="no new reference fits: the rows whose reference is cached")  # fmt: skip
    accuracy.add_argument("--rows", nargs="+", metavar="PATTERN",
                          help="only the rows whose key matches a shell pattern, e.g. 'layer-*' "
                          "'*-0.01'")  # fmt: skip
    accuracy.add_argument("--threads", type=int, default=None, help="BLAS threads")
    timing = modes.add_parser("timing", help="synthetic, the classifier part of an evaluation")
    timing.add_argument("--scale", choices=tuple(SCALES), default="caltech256")
    timing.add_argument("--threads", type=int, default=None, help="BLAS threads")
    for mode in (accuracy, timing):
        mode.add_argument("--criterion", choices=CRITERIA, default=CRITERIA[0],
                          help="the shrinkage's held-out criterion")  # fmt: skip
        mode.add_argument("--representation", choices=(ROOT, ROOT_RAW, AUTO), default=AUTO,
                          help="the continuous values LDA sees")  # fmt: skip
    args = parser.parse_args()
    (accuracy_mode if args.mode == "accuracy" else timing_mode)(args)


if __name__ == "__main__":
    main()
