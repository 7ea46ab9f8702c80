"""The embeddings scored one by one outside the classifier evaluation (retrieval, few-shot,
similar images): each layer alone, the full network, and the FNE; and the names of the
evaluation's configurations, which the export, similar and few-shot parameters use.

Names (`Configuration.parse`, the one parser of them):
- `layer:<layer>` (e.g. `layer:conv5_3`): one layer's features (continuous);
- `full_network`: every feature, continuous; `fne`: every feature, three-valued;
- `selection:<ranking>:<fraction>`: the first `fraction` of the full network's features by
  `ranking` (`transfer.features.RANKINGS`, `anova_f` or `random`), continuous; with `:fne` appended, the
  same selection three-valued (the FNE's curves). Only the evaluation ranks; the embeddings
  here are the whole ones (`parse_embedding`).
A layer's embedding is its features standardised; the full network's, every feature
standardised; the FNE's, every feature standardised then three-valued (embeddings.fne_values).
Which images the standardisation is fitted on is the caller's choice (the whole dataset for
retrieval, the support set for few-shot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.transfer.embeddings import (
    FNE_NEGATIVE,
    FNE_POSITIVE,
    Standardisation,
    fne_values,
)
from cnn_feature_behavior.transfer.features import ANOVA_F, RANKINGS

LAYER, FULL_NETWORK, FNE = "layer", "full_network", "fne"
SELECTION, RANDOM = "selection", "random"
SELECTION_RANKINGS = (*RANKINGS, ANOVA_F, RANDOM)
SPELLINGS = ("layer:<name>", FULL_NETWORK, FNE, "selection:<ranking>:<fraction>[:fne]")


@dataclass(frozen=True)
class Configuration:
    """One configuration of the transfer evaluation (a `transfer_results` row kind), by name."""

    embedding: str  # layer, full_network or fne (the three-valued kind, selections included)
    layer: str | None = None
    selection: str | None = None
    fraction: float | None = None

    @classmethod
    def parse(cls, spelling: str, parameter: str) -> Configuration:
        """The configuration `spelling` names (module doc); an error names the `parameter` and
        shows the spellings."""
        parts = str(spelling).split(":")
        if parts[0] == LAYER and len(parts) == 2 and parts[1]:
            return cls(LAYER, layer=parts[1])
        if parts in ([FULL_NETWORK], [FNE]):
            return cls(parts[0])
        if parts[0] == SELECTION and len(parts) in (3, 4) and parts[1] in SELECTION_RANKINGS:
            kind = FULL_NETWORK if len(parts) == 3 else parts[3]
            fraction = _fraction(parts[2])
            if kind in (FULL_NETWORK, FNE) and fraction is not None:
                return cls(kind, selection=parts[1], fraction=fraction)
        raise ValueError(
            f"{parameter}: {spelling!r} names no configuration; write one of "
            f"{', '.join(SPELLINGS)} (rankings: {', '.join(SELECTION_RANKINGS)}; fraction in "
            "(0, 1])"
        )

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> Configuration:
        """The configuration of a `transfer_results` (or summary) row, or an evaluation job's."""
        if row["embedding"] == LAYER:
            return cls(LAYER, layer=str(row["layer"]))
        if pd.isna(row["selection"]):
            return cls(str(row["embedding"]))
        return cls(
            str(row["embedding"]), selection=str(row["selection"]), fraction=float(row["fraction"])
        )

    @property
    def spelling(self) -> str:
        """Its name, as `parse` reads it."""
        if self.embedding == LAYER:
            return f"{LAYER}:{self.layer}"
        if self.selection is None:
            return self.embedding
        suffix = "" if self.embedding == FULL_NETWORK else f":{FNE}"
        return f"{SELECTION}:{self.selection}:{self.fraction:g}{suffix}"

    @property
    def three_valued(self) -> bool:
        return self.embedding == FNE


def _fraction(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value <= 1 else None


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
    """The whole embedding called `name` (`layer:<layer>`, `full_network` or `fne`, read by
    `Configuration.parse`); a selection or an unknown name is an error naming the `parameter`
    and the names there are."""
    known = {embedding.name: embedding for embedding in every_embedding(layers)}
    try:
        configuration = Configuration.parse(name, parameter)
    except ValueError:
        configuration = None
    if configuration is None or configuration.spelling not in known:
        raise ValueError(
            f"{parameter} is {name!r}: not an embedding of this feature manifest; one of "
            f"{', '.join(known)}"
        )
    return known[configuration.spelling]
