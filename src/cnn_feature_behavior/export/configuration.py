"""Which of the transfer evaluation's configurations is exported: named, or the study's choice.

A configuration is one row kind of `transfer_results`, spelled in `export.embedding` as:
- `layer:<name>`: one layer's features (continuous), e.g. `layer:conv5_1`;
- `full_network`: every feature, continuous; `fne`: every feature, three-valued;
- `selection:<ranking>:<fraction>`: the first `fraction` of the full network's features by
  `ranking` (`dks_count`, `dks_mean_abs`, `dks_cover` or `random`), continuous; with `:fne`
  appended, the same selection three-valued (the FNE's curves).
`study` (the default) exports the study's choice (`study_choice`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cnn_feature_behavior.reporting.transfer_summary import (
    EMBEDDING_LONG_LABELS,
    SELECTION_LABELS,
    SELECTIONS,
    best_layer,
    best_selection,
    summarise,
    whole,
)

LAYER, FULL_NETWORK, FNE = "layer", "full_network", "fne"
STUDY = "study"
SPELLINGS = (
    "layer:<name>",
    "full_network",
    "fne",
    "selection:<ranking>:<fraction>[:fne]",
    STUDY,
)


@dataclass(frozen=True)
class Configuration:
    """One configuration of the transfer evaluation: a `transfer_results` row kind."""

    embedding: str  # layer, full_network or fne (the three-valued kind, selections included)
    layer: str | None = None
    selection: str | None = None
    fraction: float | None = None

    @classmethod
    def parse(cls, spelling: str) -> Configuration:
        """The configuration `export.embedding` names (module doc); an error shows the spellings."""
        parts = str(spelling).split(":")
        if parts[0] == LAYER and len(parts) == 2 and parts[1]:
            return cls(LAYER, layer=parts[1])
        if parts in ([FULL_NETWORK], [FNE]):
            return cls(parts[0])
        if parts[0] == "selection" and len(parts) in (3, 4) and parts[1] in SELECTIONS:
            kind = FULL_NETWORK if len(parts) == 3 else parts[3]
            fraction = _fraction(parts[2])
            if kind in (FULL_NETWORK, FNE) and fraction is not None:
                return cls(kind, selection=parts[1], fraction=fraction)
        raise ValueError(
            f"export.embedding: {spelling!r} names no configuration; write one of "
            f"{', '.join(SPELLINGS)} (rankings: {', '.join(SELECTIONS)}; fraction in (0, 1])"
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
        """How `export.embedding` names it."""
        if self.embedding == LAYER:
            return f"{LAYER}:{self.layer}"
        if self.selection is None:
            return self.embedding
        suffix = "" if self.embedding == FULL_NETWORK else f":{FNE}"
        return f"selection:{self.selection}:{self.fraction:g}{suffix}"

    @property
    def three_valued(self) -> bool:
        return self.embedding == FNE

    @property
    def label(self) -> str:
        """E.g. `layer conv5_1`, `FNE (three-valued), DKS-ranked (mean |DKS|), top 10%`."""
        if self.embedding == LAYER:
            return f"layer {self.layer}"
        text = EMBEDDING_LONG_LABELS[self.embedding]
        if self.selection is None:
            return text
        kept = "a random" if self.selection == "random" else "top"
        return f"{text}, {SELECTION_LABELS[self.selection]}, {kept} {100 * self.fraction:g}%"

    def rows(self, results: pd.DataFrame) -> pd.DataFrame:
        """This configuration's rows of `transfer_results` (one per repetition; may be none)."""
        same = results["embedding"] == self.embedding
        if self.embedding == LAYER:
            return results[same & (results["layer"].astype(str) == self.layer)]
        if self.selection is None:
            return results[same & results["selection"].isna()]
        fractions = results["fraction"].astype(float).to_numpy()
        close = np.isclose(fractions, self.fraction, rtol=0, atol=1e-9)
        return results[same & (results["selection"] == self.selection) & close]


def _fraction(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value <= 1 else None


def study_choice(transfer_results: pd.DataFrame) -> tuple[Configuration, str]:
    """The configuration the study recommends, and why, in words for the model card.

    Today the transfer verdict's: of the rows it names (the best single layer, the best
    selection, the full network, the FNE), the one with the highest mean accuracy over the
    repetitions, ties to fewer features (the verdict's own rule).
    """
    summary = summarise(transfer_results)
    named = [
        row
        for row in (
            best_layer(summary),
            best_selection(summary),
            whole(summary, FULL_NETWORK),
            whole(summary, FNE),
        )
        if row is not None
    ]
    if not named:
        raise ValueError("transfer_results: no configuration with an accuracy to choose from")
    ranked = sorted(
        range(len(named)), key=lambda i: (-named[i]["accuracy"], named[i]["n_features"], i)
    )
    chosen = named[ranked[0]]
    reason = (
        "the transfer verdict's pick: of the best single layer, the best selection, the full "
        "network and the FNE, the highest mean test accuracy over the evaluation's "
        f"{int(chosen['repetitions'])} repetition(s), ties to fewer features"
    )
    return Configuration.of_row(chosen), reason
