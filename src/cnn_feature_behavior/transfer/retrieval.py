"""Retrieval score of each embedding: mean average precision at k, leave-one-out over the dataset.

Every image is a query against all the others; an image of the query's class is relevant. The
similarity is the cosine of the embedding standardised over the whole dataset (each feature's
mean and population standard deviation over every image: there is no training split, nothing is
fitted to labels); the FNE is the three-valued embedding of those standardised values
(`transfer.fne`), compared by cosine too. Each layer, the full network and the FNE are scored.

Average precision at k of a query with R relevant images among the others, whose i-th most
similar image is rel_i (1 if relevant) and P(i) the share of relevant images among the first i:

    AP@k = sum_{i=1..k} P(i) rel_i / min(k, R)

(normalised by min(k, R), the most relevant images the first k can hold, so a query whose
first k are all relevant, or all its R relevant images ranked first, scores 1). A query with no
other image of its class (R = 0: a class left with one image after extraction rejects) has no
AP and is not counted (`n_queries`). mAP@k is the mean over the counted queries; its interval is
the 95% t interval over them (queries share one database, so the interval says how precisely the
mean is known from these queries, not how another dataset would score). Ties in similarity rank
the image earlier in the dataset first (nearest.py).

`tied_with_best`: whether the paired difference of per-query APs between the embedding and the
best-scoring one has a 95% t interval holding 0 (the same queries: paired).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cnn_feature_behavior.transfer.embeddings import FNE_NEGATIVE, FNE_POSITIVE, Standardisation
from cnn_feature_behavior.transfer.intervals import mean_interval, tied_with_best
from cnn_feature_behavior.transfer.named_embeddings import NamedEmbedding, every_embedding
from cnn_feature_behavior.transfer.nearest import BLOCK, Cosines, leave_one_out

logger = logging.getLogger(__name__)

RESULT_COLUMNS = (
    "embedding",
    "layer",
    "n_features",
    "k",
    "map_at_k",
    "ci_low",
    "ci_high",
    "precision_at_k",
    "tied_with_best",
    "n_images",
    "n_queries",
    "seconds",
)


@dataclass(frozen=True)
class RetrievalSettings:
    """The `retrieval` parameters and the FNE's thresholds."""

    k: int = 10
    block: int = BLOCK
    workers: int | None = None
    fne_positive: float = FNE_POSITIVE
    fne_negative: float = FNE_NEGATIVE

    @classmethod
    def from_params(cls, retrieval: dict, fne: dict | None = None) -> RetrievalSettings:
        """Settings from `params:retrieval` and `params:transfer.fne`; unknown keys are errors."""
        known = {"k", "block", "workers"}
        unknown = sorted(set(retrieval) - known)
        if unknown:
            raise ValueError(f"retrieval: unknown key(s) {unknown}; known: {sorted(known)}")
        settings = cls(
            k=retrieval.get("k", 10),
            block=retrieval.get("block", BLOCK),
            workers=retrieval.get("workers"),
            fne_positive=float((fne or {}).get("positive", FNE_POSITIVE)),
            fne_negative=float((fne or {}).get("negative", FNE_NEGATIVE)),
        )
        for name in ("k", "block"):
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"retrieval.{name} must be an integer >= 1, got {value!r}")
        return settings


def average_precision_at_k(relevant: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """AP@k of each query (module docstring) from `relevant`, (queries, k) booleans of its
    ranked neighbours, and `n_relevant`, the relevant images each query has; NaN where 0."""
    relevant = np.asarray(relevant, bool)
    k = relevant.shape[1]
    hits = np.cumsum(relevant, axis=1)
    precision = hits / np.arange(1, k + 1)
    total = (precision * relevant).sum(axis=1)
    denominator = np.minimum(k, np.asarray(n_relevant)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, total / denominator, np.nan)


def query_scores(
    cosines: Cosines, labels: np.ndarray, settings: RetrievalSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: AP@k and precision at k (NaN where the query has no relevant image)."""
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    neighbours, _ = leave_one_out(cosines, settings.k, settings.workers, settings.block)
    relevant = (neighbours >= 0) & (codes[np.maximum(neighbours, 0)] == codes[:, None])
    n_relevant = np.bincount(codes)[codes] - 1
    ap = average_precision_at_k(relevant, n_relevant)
    precision = np.where(n_relevant > 0, relevant.sum(axis=1) / settings.k, np.nan)
    return ap, precision


def embedding_score(
    values: np.ndarray,
    labels: np.ndarray,
    standardisation: Standardisation,
    embedding: NamedEmbedding,
    settings: RetrievalSettings,
) -> tuple[dict, np.ndarray]:
    """One embedding's result row and its per-query APs."""
    started = time.perf_counter()
    thresholds = (settings.fne_positive, settings.fne_negative)
    cosines = Cosines.of(embedding.standardised(values, standardisation, thresholds))
    ap, precision = query_scores(cosines, labels, settings)
    mean, low, high = mean_interval(ap)
    row = {
        "embedding": embedding.embedding,
        "layer": embedding.layer,
        "n_features": embedding.n_features(values.shape[1]),
        "k": settings.k,
        "map_at_k": mean,
        "ci_low": low,
        "ci_high": high,
        "precision_at_k": float(np.nanmean(precision)),
        "n_images": int(len(values)),
        "n_queries": int(np.isfinite(ap).sum()),
        "seconds": time.perf_counter() - started,
    }
    logger.info(
        "retrieval %s: mAP@%d %.3f [%.3f, %.3f] (%.1f s)",
        embedding.name, settings.k, mean, low, high, row["seconds"],
    )  # fmt: skip
    return row, ap


def retrieval_scores(
    values: np.ndarray,
    labels: np.ndarray,
    layers: Sequence[str],
    settings: RetrievalSettings,
) -> pd.DataFrame:
    """mAP@k of each layer, the full network and the FNE (RESULT_COLUMNS), leave-one-out over
    the images of `values` (images, features) with their `labels`."""
    values = np.asarray(values, np.float32)
    if len(values) < 2:
        raise ValueError(f"retrieval needs at least 2 images, got {len(values)}")
    standardisation = Standardisation.fit(values)
    rows, per_query = [], []
    for embedding in every_embedding(layers):
        row, ap = embedding_score(values, labels, standardisation, embedding, settings)
        rows.append(row)
        per_query.append(ap)
    table = pd.DataFrame(rows)
    table.insert(
        table.columns.get_loc("precision_at_k") + 1,
        "tied_with_best",
        tied_with_best(np.array(per_query)),
    )
    return table[list(RESULT_COLUMNS)]
