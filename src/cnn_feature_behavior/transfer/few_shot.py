"""Few-shot accuracy of each embedding: k training images per class, many seeded episodes.

An episode of k shots draws k images of every class from the training images of one transfer
split (`transfer_splits`; episode e uses repetition e mod the number of repetitions), without
replacement, with `numpy.random.default_rng([seed, k, e])`, each class's training images in
embedding order; it is scored on every test image of that split. Every embedding and method
sees the same episodes, so their accuracies are paired.

In each episode, for each embedding (each layer, the full network, the FNE: named_embeddings):
1. the standardisation (mean, population standard deviation; 1 for a constant feature) is
   fitted on the support images only (k x classes): with k = 1 nothing else is there to fit it
   on without looking at the test images, and fitting it on the support keeps the episode a
   true k-shot problem; the FNE thresholds those standardised values (`transfer.fne`);
2. `nearest_class_mean`: each test image goes to the class whose support mean is nearest in
   Euclidean distance on those values;
3. `logistic_regression`: scikit-learn's LogisticRegression (multinomial, L2, lbfgs) with a
   fixed C (`few_shot.logistic_regression.C`, default 1.0: with one image per class there is
   nothing to choose C on), fitted on the support images; where they are at most half the
   features, in their row space (classifier.row_space_basis: the same optimum in as many
   dimensions as images; scikit-learn's lbfgs took 1.8 s of CPU for 100 images x 4,224
   features, 42,250 weights, most of it in scipy's L-BFGS-B bookkeeping). A fit whose support
   images x design width x classes exceeds `few_shot.logistic_regression.budget` (2e9: ImageNet's
   5- and 10-shot full network, hours each episode) is left out, with a warning naming it.

Per (embedding, k, method): the mean accuracy over the episodes with its 95% t interval
(intervals.mean_interval), and whether it is tied with the best embedding of the same (k,
method) (intervals.tied_with_best, paired over the episodes). A k larger than some class's
training images in a split is left out, with a warning naming the classes.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from cnn_feature_behavior.transfer.classifier import ROW_SPACE_SHARE, gram_matrix, row_space_basis
from cnn_feature_behavior.transfer.embeddings import FNE_NEGATIVE, FNE_POSITIVE, Standardisation
from cnn_feature_behavior.transfer.intervals import CONFIDENCE, mean_interval, tied_with_best
from cnn_feature_behavior.transfer.multinomial import MultinomialLogisticRegression
from cnn_feature_behavior.transfer.named_embeddings import NamedEmbedding, every_embedding
from cnn_feature_behavior.transfer.splits import TRAIN

logger = logging.getLogger(__name__)

NEAREST_CLASS_MEAN, LOGISTIC = "nearest_class_mean", "logistic_regression"
METHODS = (NEAREST_CLASS_MEAN, LOGISTIC)
RESULT_COLUMNS = (
    "embedding",
    "layer",
    "n_features",
    "k",
    "method",
    "episodes",
    "mean",
    "ci_low",
    "ci_high",
    "std",
    "tied_with_best",
    "regularisation_c",
    "n_classes",
    "n_support",
    "n_test",
)
_KEYS = {"shots", "episodes", "seed", "methods", "logistic_regression", "workers"}


@dataclass(frozen=True)
class FewShotSettings:
    """The `few_shot` parameters and the FNE's thresholds."""

    shots: tuple[int, ...] = (1, 5, 10)
    episodes: int = 20
    seed: int = 2018
    methods: tuple[str, ...] = METHODS
    logistic_c: float = 1.0
    max_iter: int = 1000
    tol: float = 1e-4
    logistic_budget: float = 2e9
    workers: int | None = None
    fne_positive: float = FNE_POSITIVE
    fne_negative: float = FNE_NEGATIVE

    @classmethod
    def from_params(cls, few_shot: Mapping, fne: Mapping | None = None) -> FewShotSettings:
        """Settings from `params:few_shot` and `params:transfer.fne`; bad values are errors
        naming the parameter."""
        unknown = sorted(set(few_shot) - _KEYS)
        if unknown:
            raise ValueError(f"few_shot: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
        logistic = dict(few_shot.get("logistic_regression") or {})
        if set(logistic) - {"C", "max_iter", "tol", "budget"}:
            raise ValueError(
                "few_shot.logistic_regression keys are C, max_iter, tol, budget; got "
                f"{sorted(logistic)}"
            )
        settings = cls(
            shots=tuple(few_shot.get("shots", (1, 5, 10))),
            episodes=few_shot.get("episodes", 20),
            seed=few_shot.get("seed", 2018),
            methods=tuple(few_shot.get("methods", METHODS)),
            logistic_c=float(logistic.get("C", 1.0)),
            max_iter=logistic.get("max_iter", 1000),
            tol=float(logistic.get("tol", 1e-4)),
            logistic_budget=float(logistic.get("budget", 2e9)),
            workers=few_shot.get("workers"),
            fne_positive=float((fne or {}).get("positive", FNE_POSITIVE)),
            fne_negative=float((fne or {}).get("negative", FNE_NEGATIVE)),
        )
        settings.check()
        return settings

    def check(self) -> None:
        def whole(value, low: int) -> bool:
            return not isinstance(value, bool) and isinstance(value, int) and value >= low

        if not self.shots or not all(whole(k, 1) for k in self.shots):
            raise ValueError(f"few_shot.shots must be integers >= 1, got {list(self.shots)}")
        for name, low in (("episodes", 2), ("seed", 0), ("max_iter", 1)):
            if not whole(getattr(self, name), low):
                raise ValueError(f"few_shot.{name} must be an integer >= {low}")
        if not self.methods or set(self.methods) - set(METHODS):
            raise ValueError(f"few_shot.methods must be among {METHODS}, got {self.methods}")
        if not self.logistic_c > 0:
            raise ValueError(f"few_shot.logistic_regression.C must be > 0, got {self.logistic_c}")


@dataclass(frozen=True)
class Episode:
    """One episode: its shots, number, split repetition, support and test rows."""

    shots: int
    number: int
    repetition: int
    support: np.ndarray  # row positions, grouped by class in label order
    test: np.ndarray


def draw_episodes(
    labels: np.ndarray, is_train: Mapping[int, np.ndarray], settings: FewShotSettings
) -> list[Episode]:
    """Every episode of every k (module docstring); `is_train` maps each split repetition to
    whether each row trains in it. A k that some class cannot fill in some repetition is left
    out, with a warning naming the classes."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    repetitions = sorted(is_train)
    members = {
        r: [np.flatnonzero(is_train[r] & (labels == c)) for c in classes] for r in repetitions
    }
    episodes = []
    for shots in settings.shots:
        short = sorted(
            {
                int(c)
                for r in repetitions
                for c, rows in zip(classes, members[r])
                if rows.size < shots
            }
        )
        if short:
            logger.warning(
                "few-shot: k = %d left out: class label(s) %s have fewer than %d training "
                "images in some split repetition",
                shots, short[:10], shots,
            )  # fmt: skip
            continue
        for number in range(settings.episodes):
            repetition = repetitions[number % len(repetitions)]
            rng = np.random.default_rng([settings.seed, shots, number])
            support = np.concatenate(
                [rng.choice(rows, shots, replace=False) for rows in members[repetition]]
            )
            test = np.flatnonzero(~is_train[repetition])
            episodes.append(Episode(shots, number, repetition, support, test))
    return episodes


def training_masks(image_ids: Sequence[str], splits: pd.DataFrame) -> dict[int, np.ndarray]:
    """Per repetition of `transfer_splits` (columns repetition, image_id, split), whether each
    embedded image (`image_ids`, in embedding order) trains in it. An embedded image without a
    split is an error; a split image without an embedding row was rejected at extraction."""
    missing = {"repetition", "image_id", "split"} - set(splits.columns)
    if missing:
        raise ValueError(f"transfer_splits lacks column(s) {sorted(missing)}")
    ids = pd.Index(np.asarray(image_ids).astype(str))
    masks = {}
    for repetition, split in splits.groupby("repetition", sort=True):
        membership = split.set_index(split["image_id"].astype(str))["split"].reindex(ids)
        if membership.isna().any():
            unsplit = ids[membership.isna().to_numpy()]
            raise ValueError(
                f"transfer_splits repetition {repetition}: {len(unsplit)} embedded image(s) "
                f"have no split, e.g. {unsplit[:5].tolist()}: run the transfer pipeline again"
            )
        masks[int(repetition)] = (membership == TRAIN).to_numpy()
    if not masks:
        raise ValueError("transfer_splits has no rows")
    return masks


def nearest_class_mean(
    support: np.ndarray, support_labels: np.ndarray, test: np.ndarray
) -> np.ndarray:
    """The label of the nearest class mean (Euclidean) of each test row; ties to the lower."""
    classes = np.unique(support_labels)
    means = np.stack([support[support_labels == c].mean(axis=0) for c in classes])
    # |x - m|^2 = |x|^2 - 2 x.m + |m|^2; |x|^2 is the same for every class.
    scores = test.astype(np.float64) @ means.T.astype(np.float64)
    distances = np.square(means.astype(np.float64)).sum(axis=1) - 2 * scores
    return classes[np.argmin(distances, axis=1)]


def logistic_regression(
    support: np.ndarray,
    support_labels: np.ndarray,
    test: np.ndarray,
    c: float,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, bool]:
    """Predictions of a multinomial logistic regression at a fixed C, and whether it converged."""
    if support.shape[0] <= ROW_SPACE_SHARE * support.shape[1]:
        # Z Z^T = X X^T: the same optimum in n dimensions (classifier.py's module docstring);
        # a test image's coordinates are its products with the weights of Z's unit vectors.
        space = row_space_basis(support, gram_matrix(support))
        rank = space.basis.shape[1]
        test = (test.astype(np.float64) @ space.to_weights(np.eye(rank))).astype(np.float32)
        support, triangular = space.basis, space.lower_triangular
    else:
        triangular = False
    model = MultinomialLogisticRegression(
        C=c, tol=tol, max_iter=max_iter, lower_triangular=triangular
    ).fit(support, support_labels)
    return model.predict(test), bool(np.max(model.n_iter_) < max_iter)


def logistic_affordable(n_support: int, n_features: int, n_classes: int, budget: float) -> bool:
    """Whether a logistic regression on n_support images of n_features is within the budget:
    images x design width (the images where the row space is used) x classes <= budget (its
    work per L-BFGS iteration is about twice that in multiply-adds)."""
    width = n_support if n_support <= ROW_SPACE_SHARE * n_features else n_features
    return float(n_support) * width * n_classes <= budget


def episode_accuracies(
    values: np.ndarray,
    labels: np.ndarray,
    episode: Episode,
    embeddings: Sequence[NamedEmbedding],
    settings: FewShotSettings,
) -> dict[tuple[str, str], tuple[float, bool]]:
    """{(embedding name, method): (test accuracy, converged)} of one episode."""
    support_labels, test_labels = labels[episode.support], labels[episode.test]
    support_all, test_all = values[episode.support], values[episode.test]
    fitted = Standardisation.fit(support_all)
    n_classes = int(np.unique(support_labels).size)
    scores = {}
    thresholds = (settings.fne_positive, settings.fne_negative)
    for embedding in embeddings:
        support = embedding.standardised(support_all, fitted, thresholds)
        test = embedding.standardised(test_all, fitted, thresholds)
        for method in settings.methods:
            converged = True
            if method == NEAREST_CLASS_MEAN:
                predicted = nearest_class_mean(support, support_labels, test)
            elif logistic_affordable(*support.shape, n_classes, settings.logistic_budget):
                predicted, converged = logistic_regression(
                    support,
                    support_labels,
                    test,
                    settings.logistic_c,
                    settings.max_iter,
                    settings.tol,
                )
            else:
                continue  # over the budget: no row (few_shot_results says so)
            scores[(embedding.name, method)] = (float(np.mean(predicted == test_labels)), converged)
    return scores


def few_shot_results(
    values: np.ndarray,
    labels: np.ndarray,
    layers: Sequence[str],
    is_train: Mapping[int, np.ndarray],
    settings: FewShotSettings,
) -> pd.DataFrame:
    """One row per (embedding, k, method) (RESULT_COLUMNS): mean test accuracy over the episodes,
    its 95% t interval, and whether it is tied with the best embedding of that (k, method).

    values: (images, features) float32; labels: (images,) ints; layers: each feature's layer;
    is_train: per split repetition, whether each image trains in it.
    """
    values = np.asarray(values, np.float32)
    labels = np.asarray(labels, np.int64)
    embeddings = every_embedding(layers)
    episodes = draw_episodes(labels, is_train, settings)
    started = time.perf_counter()
    workers = max(1, settings.workers or os.cpu_count() or 1)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # Here, not in each thread (catch_warnings is process-wide): non-converged fits are
        # counted from their iterations and logged once below.
        warnings.simplefilter("ignore", ConvergenceWarning)
        # One BLAS thread per episode, episodes in parallel: the fits are many small products.
        with ThreadPoolExecutor(workers) as pool:
            scored = list(
                pool.map(
                    lambda e: episode_accuracies(values, labels, e, embeddings, settings),
                    episodes,
                )
            )
    not_converged = sum(not ok for scores in scored for _, ok in scores.values())
    if not_converged:
        logger.warning(
            "few-shot: %d logistic regression(s) stopped at max_iter %d before converging",
            not_converged,
            settings.max_iter,
        )
    skipped = sorted(
        {(episode.shots, e.name) for episode, scores in zip(episodes, scored) for e in embeddings
         if LOGISTIC in settings.methods and (e.name, LOGISTIC) not in scores}
    )  # fmt: skip
    if skipped:
        logger.warning(
            "few-shot: logistic regression left out where images x features x classes exceed "
            "few_shot.logistic_regression.budget (%g): %s",
            settings.logistic_budget,
            ", ".join(f"{name} at k = {k}" for k, name in skipped[:20]),
        )
    logger.info("few-shot: %d episodes in %.1f s", len(episodes), time.perf_counter() - started)
    return result_rows(episodes, scored, embeddings, labels, values.shape[1], settings)


def result_rows(
    episodes: Sequence[Episode],
    scored: Sequence[dict],
    embeddings: Sequence[NamedEmbedding],
    labels: np.ndarray,
    n_all: int,
    settings: FewShotSettings,
) -> pd.DataFrame:
    """The result table from every episode's accuracies (RESULT_COLUMNS)."""
    n_classes = int(np.unique(labels).size)
    rows = []
    for shots in sorted({episode.shots for episode in episodes}):
        chosen = [i for i, episode in enumerate(episodes) if episode.shots == shots]
        n_test = int(round(np.mean([episodes[i].test.size for i in chosen])))
        for method in settings.methods:
            kept = [e for e in embeddings if all((e.name, method) in scored[i] for i in chosen)]
            if not kept:
                continue
            accuracy = np.array([[scored[i][(e.name, method)][0] for i in chosen] for e in kept])
            tied = tied_with_best(accuracy)
            for embedding, per_episode, is_tied in zip(kept, accuracy, tied):
                mean, low, high = mean_interval(per_episode, CONFIDENCE)
                rows.append(
                    {
                        "embedding": embedding.embedding,
                        "layer": embedding.layer,
                        "n_features": embedding.n_features(n_all),
                        "k": shots,
                        "method": method,
                        "episodes": len(chosen),
                        "mean": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "std": float(np.std(per_episode, ddof=1)),
                        "tied_with_best": bool(is_tied),
                        "regularisation_c": settings.logistic_c if method == LOGISTIC else np.nan,
                        "n_classes": n_classes,
                        "n_support": shots * n_classes,
                        "n_test": n_test,
                    }
                )
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
