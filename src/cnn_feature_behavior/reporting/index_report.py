"""The study index of one source model: its outline (every dataset run on it, its tables and
figures across datasets, and the comparison of source models), the prose drawn from the study's
tables, and its figures' file names (relative to index.md). What each section shows is listed
in `pipelines.reporting.parts`."""

from __future__ import annotations

import pandas as pd

from cnn_feature_behavior.reporting.report import SectionOutline

FIGURE_5 = "figure_5_layer_summary.png"
FIGURE_6_ACROSS = "figure_6_dks_histograms_across_datasets.png"
FIGURE_8 = "figure_8_fc_histograms.png"
THRESHOLD_FIT = "threshold_fit.png"
FIGURE_5_BY_MODEL = "figure_5_by_source_model.png"
FIGURE_6_BY_MODEL = "figure_6_by_source_model.png"
FIGURE_FEW_SHOT_ACROSS = "few_shot_accuracy_across_datasets.png"

REPORTS = "Reports per dataset"
TABLE_2 = "Table 2: dataset properties"
TABLE_3 = "Table 3: thresholds"
THRESHOLD_FIT_SECTION = "Thresholds against images per class"
FIGURE_5_SECTION = "Figure 5: DKS per layer across datasets"
FIGURE_6_SECTION = "Figure 6: DKS of spatial and head features across datasets"
FIGURE_8_SECTION = "Figure 8: head-layer DKS by overlap with ImageNet"
FIGURE_5_BY_MODEL_SECTION = "Figure 5 by source model"
FIGURE_6_BY_MODEL_SECTION = "Figure 6 by source model"
TRANSFER = "Transfer across datasets and source models"
SEARCH_FEW_SHOT = "Search and few-shot across datasets"

NOT_DRAWN = "Not drawn: no dataset has been run for two source models yet."

# Links to each dataset's report, Tables 2 and 3, the fit, Figures 5, 6 and 8 across datasets,
# then the comparison of source models.
OUTLINE = (
    SectionOutline(REPORTS, text="One report per dataset whose reporting pipeline has run."),
    SectionOutline(TABLE_2, text="The datasets run on {source_model}, by mean images per class."),
    SectionOutline(
        TABLE_3,
        text="Each dataset's thresholds (its report explains them): in the paper, fewer images "
        "per class give thresholds further from 0.",
    ),
    SectionOutline(
        THRESHOLD_FIT_SECTION,
        text="t = a + b ln(mean images per class), fitted over the datasets run.",
    ),
    SectionOutline(
        FIGURE_5_SECTION,
        text="Per layer, the modes of D+ and D- with 68% bars by the rule named on the "
        "axis (dks.layer_summary.interval; side_68, the default, holds 68% of the values "
        "on each side of the mode); datasets ordered and coloured by mean images per "
        "class.",
    ),
    SectionOutline(
        FIGURE_6_SECTION,
        text="Share of (feature, class) pairs per DKS bin, one line per dataset, for "
        "spatial layers (feature maps averaged over space) and head layers (1-D: VGG's "
        "fc layers, a pooled top, the logits). The paper finds the spatial (its "
        "convolutional) features' DKS more symmetric than the head (fully connected) "
        "ones'. The table checks it on every dataset and source model run: mean DKS, "
        "skewness (0: symmetric) and share of pairs above 0, from the histograms.",
    ),
    SectionOutline(
        FIGURE_8_SECTION,
        text="The DKS of head-layer features (fully connected layers, a pooled top, the "
        "logits), one panel per group of datasets by how their classes overlap ImageNet's "
        "(the paper's groups, reporting.imagenet_overlap_groups). In the paper, three datasets "
        "whose classes are ImageNet's (imagenet, caltech101, caltech256) have almost no "
        "head-layer pair at DKS 0: every head feature says something about every class.",
        when_empty="Not drawn: no dataset run on {source_model} has head layers (VGG16's "
        "offline default weights, for one, hold the conv layers only).",
    ),
    SectionOutline(
        FIGURE_5_BY_MODEL_SECTION,
        text="Figure 5 of each source model, over the datasets run on two models or more.",
        when_empty=NOT_DRAWN,
    ),
    SectionOutline(
        FIGURE_6_BY_MODEL_SECTION,
        text="Figure 6 of each source model, over the datasets run on two models or more: "
        "whether spatial features' DKS is more symmetric than head features' on each "
        "network (the table under Figure 6 gives the skewness).",
        when_empty=NOT_DRAWN,
    ),
    SectionOutline(TRANSFER),
    SectionOutline(
        SEARCH_FEW_SHOT,
        text="Per dataset and source model: the embedding that retrieves best (mAP@10, every "
        "image a query against the others) and, for each few-shot method and k, the "
        "embedding with the best mean accuracy; the figure draws the logistic regression's "
        "few-shot accuracy against k per layer, one panel per dataset of {source_model}. "
        "Each dataset's report gives the intervals and ties.",
    ),
)


def title(source_model: str) -> str:
    return f"Study index: {source_model}"


def intro(study_thresholds: pd.DataFrame, source_model: str) -> str:
    """How many datasets the index covers, in the order of its tables."""
    names = list(study_thresholds["dataset"])
    return (
        f"{len(names)} dataset(s) run on {source_model}, by mean images per class: "
        f"{', '.join(names)}."
    )


def report_links(study_thresholds: pd.DataFrame) -> tuple[tuple[str, str], ...]:
    """A link to each dataset's report, by mean images per class."""
    return tuple((name, f"{name}/report.html") for name in study_thresholds["dataset"])


def transfer_text(side_by_side: pd.DataFrame) -> str:
    """What the transfer tables compare; the side-by-side table is there from two models on."""
    compared = (
        " The first table puts the source models side by side: each one's best single layer "
        "and its mean per-class accuracy (with its classifier in brackets where a dataset's "
        "models were fitted by different classifiers: then the row compares classifiers too)."
        if len(side_by_side)
        else ""
    )
    return (
        "Per dataset and source model (every transfer run stored): the single layer and the "
        "feature selection with the best cross-validated mean per-class accuracy on the "
        "training images, then measured on the test images (mean per-class accuracy with its "
        "95% interval), the layers tied with the best one, the full network and the FNE with "
        "every feature, and the best selection against random and ANOVA-F selections of the "
        "same size (difference, interval, verdict). A table written before the cross-validated "
        f"scores names no best row.{compared}"
    )
