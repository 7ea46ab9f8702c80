"""The study index of one source model: every dataset run on it, its tables and figures across
datasets, and the comparison of source models; figure file names relative to index.md."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from cnn_feature_behavior.reporting import study, transfer_summary
from cnn_feature_behavior.reporting.report import Report, Section, format_table
from cnn_feature_behavior.reporting.symmetry import SYMMETRY_DECIMALS

FIGURE_5 = "figure_5_layer_summary.png"
FIGURE_6_ACROSS = "figure_6_dks_histograms_across_datasets.png"
FIGURE_8 = "figure_8_fc_histograms.png"
THRESHOLD_FIT = "threshold_fit.png"
FIGURE_5_BY_MODEL = "figure_5_by_source_model.png"
FIGURE_6_BY_MODEL = "figure_6_by_source_model.png"


@dataclass(frozen=True)
class IndexTables:
    """The index's tables: Tables 2 and 3 over the datasets run, the fit, transfer by model."""

    dataset_properties: pd.DataFrame
    thresholds: pd.DataFrame
    threshold_fit: pd.DataFrame
    transfer: pd.DataFrame
    dks_symmetry: pd.DataFrame  # per dataset, layer kind and source model


@dataclass(frozen=True)
class IndexFigures:
    """The index's figures; `figure_5_by_model` is empty when no dataset has two models."""

    figure_5: Figure
    figure_6: Figure
    figure_8: Figure
    threshold_fit_plot: Figure
    figure_5_by_model: dict[str, Figure] = field(default_factory=dict)
    figure_6_by_model: dict[str, Figure] = field(default_factory=dict)

    def by_file_name(self) -> dict[str, Figure]:
        """Every figure under the file name the index refers to it by."""
        return {
            FIGURE_5: self.figure_5,
            FIGURE_6_ACROSS: self.figure_6,
            FIGURE_8: self.figure_8,
            THRESHOLD_FIT: self.threshold_fit_plot,
            **self.figure_5_by_model,
            **self.figure_6_by_model,
        }


def _by_model_section(title: str, text: str, figure_names: tuple[str, ...]) -> Section:
    if figure_names:
        return Section(title, text=text, figures=figure_names)
    return Section(title, text="Not drawn: no dataset has been run for two source models yet.")


def _transfer_section(study_transfer: pd.DataFrame) -> Section:
    side_by_side = study.transfer_side_by_side(study_transfer)
    compared = (
        " The first table puts the source models side by side: each one's best single layer "
        "and its accuracy."
        if len(side_by_side)
        else ""
    )
    return Section(
        "Transfer across datasets and source models",
        text="Per dataset and source model (every transfer run stored): the single layer "
        "with the best test accuracy, the full network and the FNE with every feature, "
        "and the best feature selection with a random selection of the same size; mean "
        f"accuracy over the repetitions of seeded splits.{compared}",
        tables=(
            *((format_table(side_by_side),) if len(side_by_side) else ()),
            format_table(study_transfer, transfer_summary.ACROSS_TABLE_DECIMALS),
        ),
    )


def index_report(tables: IndexTables, figures: IndexFigures, source_model: str) -> Report:
    """The sections of the index: links to each dataset's report, Tables 2 and 3, the fit,
    Figures 5, 6 and 8 across datasets, then the comparison of source models."""
    names = list(tables.thresholds["dataset"])
    return Report(
        title=f"Study index: {source_model}",
        intro=(
            f"{len(names)} dataset(s) run on {source_model}, by mean images per class: "
            f"{', '.join(names)}."
        ),
        sections=(
            Section(
                "Reports per dataset",
                text="One report per dataset whose reporting pipeline has run.",
                links=tuple((name, f"{name}/report.html") for name in names),
            ),
            Section(
                "Table 2: dataset properties", tables=(format_table(tables.dataset_properties),)
            ),
            Section("Table 3: thresholds", tables=(format_table(tables.thresholds),)),
            Section(
                "Thresholds against images per class",
                text="t = a + b ln(mean images per class), fitted over the datasets run.",
                tables=(format_table(tables.threshold_fit),),
                figures=(THRESHOLD_FIT,),
            ),
            Section(
                "Figure 5: DKS per layer across datasets",
                text="Per layer, the modes of D+ and D- with 68% bars by the rule named on the "
                "axis (dks.layer_summary.interval; side_68, the default, holds 68% of the values "
                "on each side of the mode); datasets ordered and coloured by mean images per "
                "class.",
                figures=(FIGURE_5,),
            ),
            Section(
                "Figure 6: DKS of spatial and head features across datasets",
                text="Share of (feature, class) pairs per DKS bin, one line per dataset, for "
                "spatial layers (feature maps averaged over space) and head layers (1-D: VGG's "
                "fc layers, a pooled top, the logits). The paper finds the spatial (its "
                "convolutional) features' DKS more symmetric than the head (fully connected) "
                "ones'. The table checks it on every dataset and source model run: mean DKS, "
                "skewness (0: symmetric) and share of pairs above 0, from the histograms.",
                tables=(format_table(tables.dks_symmetry, SYMMETRY_DECIMALS),),
                figures=(FIGURE_6_ACROSS,),
            ),
            Section(
                "Figure 8: head-layer DKS by overlap with ImageNet",
                text="The DKS of head-layer features (VGG's fc layers), one panel per group of "
                "datasets by how their classes overlap ImageNet's.",
                figures=(FIGURE_8,),
            ),
            _by_model_section(
                "Figure 5 by source model",
                "Figure 5 of each source model, over the datasets run on two models or more.",
                tuple(figures.figure_5_by_model),
            ),
            _by_model_section(
                "Figure 6 by source model",
                "Figure 6 of each source model, over the datasets run on two models or more: "
                "whether spatial features' DKS is more symmetric than head features' on each "
                "network (the table under Figure 6 gives the skewness).",
                tuple(figures.figure_6_by_model),
            ),
            _transfer_section(tables.transfer),
        ),
    )
