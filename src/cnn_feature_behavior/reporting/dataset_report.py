"""The report of one dataset on one source model: its sections, their prose, and its figures'
file names (relative to report.md, beside it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from cnn_feature_behavior.reporting import transfer_summary
from cnn_feature_behavior.reporting.report import Report, Section, format_table
from cnn_feature_behavior.reporting.symmetry import SYMMETRY_DECIMALS, dks_symmetry

FIGURE_1 = "figure_1_feature_class_pair.png"
FIGURE_6 = "figure_6_dks_histograms.png"
FIGURE_9 = "figure_9_class_counts.png"
DAVG = "davg_curve.png"
FIGURE_10 = "figure_10_layer_kept.png"
FIGURE_TRANSFER_BY_LAYER = "transfer_accuracy_per_layer.png"
FIGURE_TRANSFER_CURVE = "transfer_accuracy_by_features_kept.png"
FIGURE_EMBEDDING_MAPS = "embedding_maps.png"

FIGURE_6_TEXT = (
    "Share of (feature, class) pairs per DKS bin, for the features of spatial layers (feature "
    "maps averaged over space: VGG's conv layers, a ResNet's or an EfficientNet's block outputs) "
    "and of head layers (1-D: VGG's fc6 and fc7, a pooled top, the logits). The paper finds the "
    "DKS of convolutional (spatial) features more symmetric around 0 than that of fully "
    "connected (head) ones. The table gives, per layer kind, the mean DKS, its skewness (0: "
    "symmetric; > 0: a longer tail towards positive DKS) and the share of pairs above 0, "
    "computed from the histograms drawn."
)


@dataclass(frozen=True)
class RunName:
    """Which run a report or figure is about."""

    dataset: str
    source_model: str


@dataclass(frozen=True)
class DatasetFigures:
    """The figures of one dataset's report; `top_features` are already keyed by file name."""

    figure_1: Figure
    figure_6: Figure
    figure_9: Figure
    davg: Figure
    figure_10: Figure
    transfer_by_layer: Figure
    transfer_curve: Figure
    embedding_maps: Figure
    top_features: dict[str, Figure] = field(default_factory=dict)

    def by_file_name(self) -> dict[str, Figure]:
        """Every figure under the file name the report refers to it by."""
        named = {
            FIGURE_1: self.figure_1,
            FIGURE_6: self.figure_6,
            FIGURE_9: self.figure_9,
            DAVG: self.davg,
            FIGURE_10: self.figure_10,
            FIGURE_TRANSFER_BY_LAYER: self.transfer_by_layer,
            FIGURE_TRANSFER_CURVE: self.transfer_curve,
            FIGURE_EMBEDDING_MAPS: self.embedding_maps,
        }
        clashes = sorted(set(self.top_features) & set(named))
        if clashes:
            raise ValueError(f"top-feature figures reuse the report's file names {clashes}")
        return named | self.top_features


def one_row(table: pd.DataFrame, name: str) -> pd.Series:
    """The single row of a one-run table (Table 2's or Table 3's row of this dataset)."""
    if len(table) != 1:
        raise ValueError(f"{name}: expected exactly one row, got {len(table)}")
    return table.iloc[0]


def transfer_section(transfer_results: pd.DataFrame, figure_names: tuple[str, ...]) -> Section:
    """The verdict, how the transfer was evaluated, the table per embedding, and its figures."""
    summary = transfer_summary.summarise(transfer_results)
    n_train = ", ".join(f"{value:,.0f}" for value in sorted(set(summary["n_train"])))
    n_test = ", ".join(f"{value:,.0f}" for value in sorted(set(summary["n_test"])))
    classifiers = ", ".join(sorted(set(summary["classifier"])))
    return Section(
        "Transfer",
        text=(
            f"{transfer_summary.transfer_verdict(transfer_results)}\n\n"
            f"Split: {transfer_summary.split_description(summary)}; {n_train} training and "
            f"{n_test} test images. Classifier: {classifiers} on each embedding standardised "
            "with training statistics; its regularisation C (column regularisation_c: the "
            "values chosen over the repetitions), the DKS ranking, t+ and t- are fitted on the "
            "training images only. Accuracy on the test images; mean per-class accuracy "
            "averages the per-class recalls. The maps are t-SNE after PCA of a stratified "
            "subsample of every image."
        ),
        tables=(
            format_table(
                transfer_summary.report_table(summary), transfer_summary.REPORT_TABLE_DECIMALS
            ),
        ),
        figures=figure_names,
    )


def _statistics_sections(
    dataset_properties: pd.DataFrame, thresholds: pd.DataFrame, dks_histograms: pd.DataFrame
) -> tuple[Section, ...]:
    return (
        Section("Table 2: dataset properties", tables=(format_table(dataset_properties),)),
        Section(
            "Table 3: thresholds",
            text="t+ and t- maximise davg, the mean number of features per class beyond "
            "x with real labels minus that with randomised labels (Equation 4).",
            tables=(format_table(thresholds),),
        ),
        Section(
            "Figure 1: one (feature, class) pair",
            text="Inner-class and outer-class histograms of one feature, and their EDFs; "
            "the red segment is the largest gap, the signed DKS.",
            figures=(FIGURE_1,),
        ),
        Section(
            "Figure 6: DKS distribution of spatial and head features",
            text=FIGURE_6_TEXT,
            tables=(format_table(dks_symmetry(dks_histograms), SYMMETRY_DECIMALS),),
            figures=(FIGURE_6,),
        ),
        Section(
            "Figure 9: features per class beyond x",
            text="One line per class: features with DKS above x (left) or below x "
            "(right); real labels in black, randomised labels in red, thresholds "
            "dashed.",
            figures=(FIGURE_9,),
        ),
        Section(
            "Threshold selection: davg(x)",
            text="davg(x) on each side of 0; t+ and t- are where it peaks.",
            figures=(DAVG,),
        ),
        Section(
            "Figure 10: pairs kept per layer",
            text="Share of each layer's (feature, class) pairs beyond the thresholds, "
            "real labels against randomised labels.",
            figures=(FIGURE_10,),
        ),
    )


def dataset_report(
    dataset_properties: pd.DataFrame,
    thresholds: pd.DataFrame,
    dks_histograms: pd.DataFrame,
    transfer_results: pd.DataFrame,
    top_feature_names: tuple[str, ...],
    run: RunName,
) -> Report:
    """The sections of one dataset's report, in the paper's order, then transfer and a link to
    the index across datasets."""
    properties = one_row(dataset_properties, "dataset_properties")
    row = one_row(thresholds, "thresholds")
    return Report(
        title=f"{run.dataset} on {run.source_model}",
        intro=(
            f"What each feature of {run.source_model} says about each of the "
            f"{int(properties['n_classes'])} classes of {run.dataset} "
            f"({int(properties['n_images'])} images), after Garcia-Gasulla et al. (JAIR 2018). "
            f"Thresholds: t+ = {row['t_plus']:+.3f}, t- = {row['t_minus']:+.3f}."
        ),
        sections=(
            *_statistics_sections(dataset_properties, thresholds, dks_histograms),
            Section(
                "Figures 2, 3, 4 and 7: top features per class",
                text="For each class shown, the features with the highest DKS (presence) and "
                "the lowest (absence), each as the 9 patches of the reference pool that "
                "activate it most, cropped to its receptive field.",
                figures=top_feature_names,
            ),
            transfer_section(
                transfer_results,
                (FIGURE_TRANSFER_BY_LAYER, FIGURE_TRANSFER_CURVE, FIGURE_EMBEDDING_MAPS),
            ),
            Section(
                "Across datasets",
                text=f"Every dataset run so far on {run.source_model}: Figures 5 and 8, Tables 2 "
                "and 3, the threshold fit.",
                links=(("Study index", "../index.html"),),
            ),
        ),
    )
