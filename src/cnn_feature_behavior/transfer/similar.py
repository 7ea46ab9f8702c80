"""The images of the dataset most similar to query images, in one embedding.

Similarity is the cosine of the embedding (`layer:<layer>`, `full_network` or `fne`:
named_embeddings) standardised with the dataset's statistics: each feature's mean and population
standard deviation over every embedded image of the dataset, the same standardisation as the
retrieval score, applied to the dataset and to the queries alike (the FNE three-valued after).
Each query's k most similar dataset images, best first; ties to the image earlier in the dataset
(nearest.py). A query image that is itself in the dataset finds itself first, with cosine 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cnn_feature_behavior.transfer.embeddings import FNE_NEGATIVE, FNE_POSITIVE, Standardisation
from cnn_feature_behavior.transfer.named_embeddings import NamedEmbedding
from cnn_feature_behavior.transfer.nearest import Cosines, most_similar

RESULT_COLUMNS = ("query", "rank", "image_id", "path", "class", "similarity")
_KEYS = {"images", "embedding", "k", "sheet_queries"}


@dataclass(frozen=True)
class SimilarSettings:
    """The `similar` parameters."""

    images: str
    embedding: str = "layer:conv5_3"
    k: int = 10
    sheet_queries: int = 20

    @classmethod
    def from_params(cls, similar: Mapping) -> SimilarSettings:
        unknown = sorted(set(similar) - _KEYS)
        if unknown:
            raise ValueError(f"similar: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
        if not similar.get("images"):
            raise ValueError(
                "similar.images is not set: name a query image or a folder of them, e.g. "
                "kedro run --pipelines similar --params similar.images=<folder or file>"
            )
        settings = cls(
            images=str(similar["images"]),
            embedding=str(similar.get("embedding", "layer:conv5_3")),
            k=similar.get("k", 10),
            sheet_queries=similar.get("sheet_queries", 20),
        )
        for name in ("k", "sheet_queries"):
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"similar.{name} must be an integer >= 1, got {value!r}")
        return settings


def similar_images(
    queries: pd.DataFrame,
    dataset: np.ndarray,
    images: pd.DataFrame,
    embedding: NamedEmbedding,
    k: int,
    fne_thresholds: tuple[float, float] = (FNE_POSITIVE, FNE_NEGATIVE),
) -> pd.DataFrame:
    """Each query's k most similar dataset images (RESULT_COLUMNS, by query then rank).

    queries: one row of every feature per query image, indexed by its path; dataset: (images,
    every feature) float32; images: the dataset rows' `image_id`, `path`, `class_name`.
    """
    if len(images) != len(dataset):
        raise ValueError(f"{len(images)} image rows for {len(dataset)} embedding rows")
    standardisation = Standardisation.fit(dataset)
    found, similarity = most_similar(
        Cosines.of(embedding.standardised(np.asarray(queries, np.float32), standardisation,
                                          fne_thresholds)),
        Cosines.of(embedding.standardised(dataset, standardisation, fne_thresholds)),
        min(k, len(dataset)),
    )  # fmt: skip
    rank = np.tile(np.arange(1, found.shape[1] + 1), len(queries))
    chosen = images.iloc[found.ravel()]
    return pd.DataFrame(
        {
            "query": np.repeat(queries.index.astype(str).to_numpy(), found.shape[1]),
            "rank": rank,
            "image_id": chosen["image_id"].astype(str).to_numpy(),
            "path": chosen["path"].astype(str).to_numpy(),
            "class": chosen["class_name"].astype(str).to_numpy(),
            "similarity": similarity.ravel().astype(np.float64),
        },
        columns=list(RESULT_COLUMNS),
    )
