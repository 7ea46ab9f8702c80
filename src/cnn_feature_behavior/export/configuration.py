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
    chosen_rows,
    summarise,
    whole,
)
from cnn_feature_behavior.transfer.comparisons import BEST_LAYER, BEST_SELECTION
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

    The transfer verdict's, without looking at the test images: of the rows it names (the best
    single layer and the best selection, `transfer_summary.chosen_rows`, the full network, the
    FNE), the highest cross-validated mean per-class accuracy on the training images (the mean
    over the repetitions), ties to the lower cross-validated loss, then to fewer features.
    """
    summary = summarise(transfer_results)
    chosen = chosen_rows(transfer_results, summary)
    named = [
        row
        for row in (
            chosen[BEST_LAYER],
            chosen[BEST_SELECTION],
            whole(summary, FULL_NETWORK),
            whole(summary, FNE),
        )
        if row is not None and pd.notna(row["cv_mean_per_class_accuracy"])
    ]
    if not named:
        raise ValueError(
            "transfer_results has no cross-validated score to choose from (written before "
            "them): run the transfer pipeline again, or name the configuration in "
            "export.embedding"
        )
    ranked = sorted(
        range(len(named)),
        key=lambda i: (
            -named[i]["cv_mean_per_class_accuracy"],
            named[i]["cv_loss"] if pd.notna(named[i]["cv_loss"]) else np.inf,
            named[i]["n_features"],
            i,
        ),
    )
    best = named[ranked[0]]
    reason = (
        "the transfer verdict's pick: of the best single layer, the best selection, the full "
        "network and the FNE, the highest cross-validated mean per-class accuracy on the "
        f"training images (mean over the evaluation's {int(best['repetitions'])} "
        "repetition(s)), ties to the lower cross-validated loss, then to fewer features; the "
        "test images are not looked at"
    )
    return Configuration.of_row(best), reason
