"""The embeddings scored one by one outside the classifier evaluation (retrieval, few-shot,
similar images): each layer alone, the full network, and the FNE, and their names.

Names: `layer:<layer>` (e.g. `layer:conv5_3`), `full_network`, `fne`. A layer's embedding is its
features standardised; the full network's, every feature standardised; the FNE's, every feature
standardised then three-valued (embeddings.fne_values). Which images the standardisation is
fitted on is the caller's choice (the whole dataset for retrieval, the support set for
few-shot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cnn_feature_behavior.transfer.embeddings import (
    FNE_NEGATIVE,
    FNE_POSITIVE,
    Standardisation,
    fne_values,
)

LAYER, FULL_NETWORK, FNE = "layer", "full_network", "fne"


@dataclass(frozen=True)
class NamedEmbedding:
    """One embedding: its kind, its layer (kind `layer` only) and its columns (None: all)."""

    embedding: str
    layer: str | None = None
    columns: np.ndarray | None = None

    @property
    def name(self) -> str:
        return f"{LAYER}:{self.layer}" if self.embedding == LAYER else self.embedding

    def n_features(self, n_all: int) -> int:
        return n_all if self.columns is None else int(self.columns.size)

    def standardised(
        self,
        values: np.ndarray,
        standardisation: Standardisation,
        fne_thresholds: tuple[float, float] = (FNE_POSITIVE, FNE_NEGATIVE),
    ) -> np.ndarray:
        """The embedding of images whose every feature is in `values`: its columns standardised
        with `standardisation` (fitted on every feature of some images), three-valued for the
        FNE (thresholds: positive, negative), as float32."""
        if self.columns is not None:
            values = values[:, self.columns]
            standardisation = Standardisation(
                standardisation.mean[self.columns], standardisation.scale[self.columns]
            )
        standardised = standardisation.apply(values)
        if self.embedding == FNE:
            return fne_values(standardised, *fne_thresholds)
        return standardised


def every_embedding(layers: Sequence[str]) -> list[NamedEmbedding]:
    """Each layer in the order of the features' `layers`, then the full network and the FNE."""
    layers = np.asarray(layers).astype(str)
    singles = [
        NamedEmbedding(LAYER, str(layer), np.flatnonzero(layers == layer))
        for layer in pd.unique(layers)
    ]
    return [*singles, NamedEmbedding(FULL_NETWORK), NamedEmbedding(FNE)]


def parse_embedding(name: str, layers: Sequence[str], parameter: str) -> NamedEmbedding:
    """The embedding called `name` (`layer:<layer>`, `full_network` or `fne`); an unknown name
    is an error naming the `parameter` and the names there are."""
    known = {embedding.name: embedding for embedding in every_embedding(layers)}
    if str(name) not in known:
        raise ValueError(
            f"{parameter} is {name!r}: not an embedding of this feature manifest; one of "
            f"{', '.join(known)}"
        )
    return known[str(name)]
