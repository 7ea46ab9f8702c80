"""Which of the transfer evaluation's configurations is exported: named, or the study's choice.

`export.embedding` names a configuration as the transfer evaluation does
(`transfer.named_embeddings.Configuration`: `layer:<name>`, `full_network`, `fne`,
`selection:<ranking>:<fraction>[:fne]`); `study` (the default) exports the study's choice
(`study_choice`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cnn_feature_behavior.reporting.transfer_summary import (
    EMBEDDING_LONG_LABELS,
    SELECTION_LABELS,
    best_layer,
    best_selection,
    summarise,
    whole,
)
from cnn_feature_behavior.transfer.named_embeddings import (
    FNE,
    FULL_NETWORK,
    LAYER,
    RANDOM,
    Configuration,
)

STUDY = "study"


def configuration_label(configuration: Configuration) -> str:
    """E.g. `layer conv5_1`, `FNE (three-valued), DKS-ranked (mean |DKS|), top 10%`."""
    if configuration.embedding == LAYER:
        return f"layer {configuration.layer}"
    text = EMBEDDING_LONG_LABELS[configuration.embedding]
    if configuration.selection is None:
        return text
    kept = "a random" if configuration.selection == RANDOM else "top"
    return (
        f"{text}, {SELECTION_LABELS[configuration.selection]}, {kept} "
        f"{100 * configuration.fraction:g}%"
    )


def configuration_rows(configuration: Configuration, results: pd.DataFrame) -> pd.DataFrame:
    """The configuration's rows of `transfer_results` (one per repetition; may be none)."""
    same = results["embedding"] == configuration.embedding
    if configuration.embedding == LAYER:
        return results[same & (results["layer"].astype(str) == configuration.layer)]
    if configuration.selection is None:
        return results[same & results["selection"].isna()]
    fractions = results["fraction"].astype(float).to_numpy()
    close = np.isclose(fractions, configuration.fraction, rtol=0, atol=1e-9)
    return results[same & (results["selection"] == configuration.selection) & close]


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
