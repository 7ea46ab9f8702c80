"""Reporting nodes: the paper's tables and figures for one dataset and across datasets, and the
reports that gather them (Markdown beside the PNG files, and a self-contained HTML page)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from cnn_feature_behavior.extraction import top_patches
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.reporting import figures, study, transfer_summary
from cnn_feature_behavior.reporting.dataset_report import (
    DatasetFigures,
    RunName,
    dataset_report,
    one_row,
)
from cnn_feature_behavior.reporting.figures import top_features
from cnn_feature_behavior.reporting.index_report import (
    FIGURE_5_BY_MODEL,
    FIGURE_6_BY_MODEL,
    IndexFigures,
    IndexTables,
    index_report,
)
from cnn_feature_behavior.reporting.report import format_table, markdown_table, render_report
from cnn_feature_behavior.reporting.symmetry import SYMMETRY_DECIMALS, symmetry_by_model
from cnn_feature_behavior.statistics import partitions as partitions_core
from cnn_feature_behavior.statistics.partitions import (
    gather_dataset_tables,
    model_table_key,
    split_model_table_key,
)

logger = logging.getLogger(__name__)

Partitions = Mapping[str, Callable[[], pd.DataFrame]]


# --- Tables -------------------------------------------------------------------------------------


def _markdown(table: pd.DataFrame, decimals: dict[str, int] | None = None) -> str:
    return markdown_table(format_table(table, decimals)) + "\n"


def dataset_tables(
    dataset_properties: pd.DataFrame, thresholds: pd.DataFrame
) -> tuple[pd.DataFrame, str, pd.DataFrame, str]:
    """This dataset's Table 2 row and Table 3 row, each as a frame (for CSV) and as Markdown."""
    one_row(dataset_properties, "dataset_properties")
    one_row(thresholds, "thresholds")
    return dataset_properties, _markdown(dataset_properties), thresholds, _markdown(thresholds)


def cross_dataset_tables(
    all_dataset_properties: Partitions,
    dataset_properties: pd.DataFrame,
    all_thresholds: Partitions,
    thresholds: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    dataset: str,
) -> tuple[pd.DataFrame, str, pd.DataFrame, str, pd.DataFrame, str]:
    """Tables 2 and 3 over every dataset run so far (by mean images per class) and the fit."""
    properties = study.by_images_per_class(
        gather_dataset_tables(
            all_dataset_properties, dataset_properties, dataset, "dataset_properties"
        )
    )
    study_thresholds = study.by_images_per_class(
        gather_dataset_tables(all_thresholds, thresholds, dataset, "thresholds")
    )
    properties = study.only_datasets_calibrated(properties, study_thresholds)
    return (
        properties,
        _markdown(properties),
        study_thresholds,
        _markdown(study_thresholds),
        threshold_fit,
        _markdown(threshold_fit),
    )


# --- Figures of one dataset ----------------------------------------------------------------------


def plot_feature_class_pair(
    dks: pd.DataFrame,
    embedding_columns: ShardedEmbeddingDataset,
    image_index: pd.DataFrame,
    choice: dict[str, str | None],
    bins: int | None,
    dataset: str,
) -> Figure:
    """Figure 1 for the chosen (feature, class) pair, or the one with the largest |DKS|, on the
    DKS's own bins (`dks.bins`); reads only that feature's column of the embedding."""
    feature, class_name, stored = figures.select_feature_class_pair(
        dks, choice.get("feature"), choice.get("class_name")
    )
    embedding = embedding_columns.load_columns([feature])
    labels = image_index.set_index("image_id")["class_name"]
    unknown = embedding.index.difference(labels.index)
    if len(unknown):
        raise ValueError(
            f"embedding: {len(unknown)} image_id(s) absent from image_index, e.g. {unknown[0]!r}"
        )
    values = embedding[feature].to_numpy()
    is_inner = (labels.loc[embedding.index] == class_name).to_numpy()
    drawn = figures.inner_outer_distributions(values, is_inner, bins).signed_dks
    logger.info(
        "Figure 1: %s, class %r: stored DKS %+.4f, drawn %+.4f", feature, class_name, stored, drawn
    )
    # float32 storage of the DKS table allows a difference of about 1e-7.
    if abs(drawn - stored) > 1e-4:
        logger.warning(
            "Figure 1: the drawn EDF gap %+.4f differs from the stored DKS %+.4f; was "
            "the dks table computed on other bins or images?",
            drawn,
            stored,
        )
    return figures.feature_class_pair_figure(
        values,
        is_inner,
        feature=feature,
        class_name=class_name,
        dataset=dataset,
        stored_dks=stored,
        bins=bins,
    )


def plot_dks_histograms(
    dks_histograms: pd.DataFrame,
    dataset_properties: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> Figure:
    """Figure 6 for this dataset."""
    return figures.dks_histograms_figure(
        dks_histograms,
        study.mean_images(dataset_properties),
        title=f"Figure 6 - DKS distribution, {dataset} on {source_model}",
    )


def plot_class_counts(
    class_counts: pd.DataFrame, thresholds: pd.DataFrame, dataset: str, source_model: str
) -> Figure:
    """Figure 9 for this dataset, with its t+ and t- dashed."""
    row = one_row(thresholds, "thresholds")
    return figures.class_counts_figure(
        class_counts,
        t_plus=float(row["t_plus"]),
        t_minus=float(row["t_minus"]),
        dataset=dataset,
        source_model=source_model,
    )


def plot_davg_curve(
    davg_curve: pd.DataFrame, thresholds: pd.DataFrame, dataset: str, source_model: str
) -> Figure:
    """davg(x) for this dataset, with the thresholds at its maxima."""
    row = one_row(thresholds, "thresholds")
    return figures.davg_figure(
        davg_curve,
        t_plus=float(row["t_plus"]),
        t_minus=float(row["t_minus"]),
        dataset=dataset,
        source_model=source_model,
    )


def plot_layer_kept(layer_kept: pd.DataFrame, dataset: str, source_model: str) -> Figure:
    """Figure 10 for this dataset."""
    return figures.layer_kept_figure(layer_kept, dataset=dataset, source_model=source_model)


def plot_top_feature_patches(
    dks: pd.DataFrame,
    image_index: pd.DataFrame,
    raw_dir: str,
    source_model: str,
    source_models: dict[str, Any],
    visualisation_params: dict[str, Any],
    feature_extraction_params: dict[str, Any],
) -> dict[str, Figure]:
    """Figures 2, 3, 4 and 7: one figure per chosen class, `top_features_<class>.png`, its top
    presence and absence features, each as the 9 reference-pool patches that activate it most."""
    settings = top_patches.VisualisationSettings.from_params(visualisation_params)
    network = top_patches.Network.from_params(
        source_model, source_models, feature_extraction_params
    )
    classes = top_patches.chosen_classes(dks, settings)
    # Classes whose file names clash are refused before the network runs.
    file_names = top_features.top_feature_file_names(classes)
    found = top_patches.find_top_patches(dks, image_index, raw_dir, classes, settings, network)
    return top_features.top_feature_figures(found, file_names, source_model)


# --- Figures across datasets ---------------------------------------------------------------------


def plot_layer_summary_across_datasets(
    all_dks_layer_summary: Partitions,
    dks_layer_summary: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> Figure:
    """Figure 5 over every dataset run so far for this source model."""
    summary = gather_dataset_tables(
        all_dks_layer_summary, dks_layer_summary, dataset, "dks_layer_summary"
    )
    return figures.layer_summary_figure(
        summary, study.mean_images(summary), source_model=source_model
    )


def plot_dks_histograms_across_datasets(
    all_dks_histograms: Partitions,
    dks_histograms: pd.DataFrame,
    study_dataset_properties: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> Figure:
    """Figure 6 over every dataset run so far for this source model."""
    histograms = gather_dataset_tables(
        all_dks_histograms, dks_histograms, dataset, "dks_histograms"
    )
    names = sorted(set(histograms["dataset"]))
    note = f" - only one dataset run so far: {names[0]}" if len(names) == 1 else ""
    return figures.dks_histograms_figure(
        histograms,
        study.mean_images(study_dataset_properties),
        title=f"Figure 6 - DKS distribution across datasets, {source_model}{note}",
    )


def plot_fc_histograms_by_overlap(
    all_dks_histograms: Partitions,
    dks_histograms: pd.DataFrame,
    study_dataset_properties: pd.DataFrame,
    overlap_groups: dict[str, list[str]],
    dataset: str,
    source_model: str,
) -> Figure:
    """Figure 8 over every dataset run so far for this source model."""
    histograms = gather_dataset_tables(
        all_dks_histograms, dks_histograms, dataset, "dks_histograms"
    )
    return figures.fc_histograms_by_overlap_figure(
        histograms,
        overlap_groups,
        study.mean_images(study_dataset_properties),
        source_model=source_model,
    )


def plot_threshold_fit(
    study_thresholds: pd.DataFrame, threshold_fit: pd.DataFrame, source_model: str
) -> Figure:
    """t+ and t- against mean images per class with the fitted logarithmic curves."""
    return figures.threshold_fit_figure(study_thresholds, threshold_fit, source_model=source_model)


def _model_tables(
    all_model_outputs: Partitions, current: pd.DataFrame, table: str, run: RunName
) -> dict[str, pd.DataFrame]:
    """Every stored `<model>/<table>/<dataset>` file, this run's in place of its own."""

    def is_table(key: str) -> bool:
        parts = split_model_table_key(key)
        return parts is not None and parts[1] == table

    return partitions_core.gather_partitions(
        all_model_outputs,
        current,
        model_table_key(run.source_model, table, run.dataset),
        is_table,
    )


def layer_summaries_by_model(
    all_model_outputs: Partitions,
    dks_layer_summary: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> dict[str, pd.DataFrame]:
    """Each source model's layer summaries, from `<model>/dks_layer_summary/<dataset>` files."""
    run = RunName(dataset, source_model)
    return study.tables_by_model(
        _model_tables(all_model_outputs, dks_layer_summary, "dks_layer_summary", run)
    )


def plot_layer_summary_by_source_model(
    all_model_outputs: Partitions,
    dks_layer_summary: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> dict[str, Figure]:
    """Figure 5 per source model side by side, over the datasets run for two models or more.

    Empty when fewer than two source models share a dataset; the index says so.
    """
    compared = study.compared_by_model(
        layer_summaries_by_model(all_model_outputs, dks_layer_summary, dataset, source_model)
    )
    if not compared:
        return {}
    everything = pd.concat(compared.values(), ignore_index=True)
    return {
        FIGURE_5_BY_MODEL: figures.layer_summary_by_model_figure(
            compared, study.mean_images(everything)
        )
    }


def plot_dks_histograms_by_source_model(
    all_model_outputs: Partitions,
    dks_histograms: pd.DataFrame,
    all_dataset_properties: Partitions,
    dataset_properties: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> dict[str, Figure]:
    """Figure 6 per source model side by side, over the datasets run for two models or more.

    Empty when fewer than two source models share a dataset; the index says so.
    """
    run = RunName(dataset, source_model)
    compared = study.compared_by_model(
        study.tables_by_model(
            _model_tables(all_model_outputs, dks_histograms, "dks_histograms", run)
        ),
        "Figure 6 by source model",
    )
    if not compared:
        return {}
    properties = gather_dataset_tables(
        all_dataset_properties, dataset_properties, dataset, "dataset_properties"
    )
    return {
        FIGURE_6_BY_MODEL: figures.dks_histograms_by_model_figure(
            compared, study.mean_images(properties)
        )
    }


def dks_symmetry_by_source_model(
    all_model_outputs: Partitions,
    dks_histograms: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> tuple[pd.DataFrame, str]:
    """Mean, skewness and share above 0 of the DKS of spatial and of head features, for every
    dataset and source model stored: the paper's symmetry finding, checkable across models."""
    run = RunName(dataset, source_model)
    histograms = study.tables_by_model(
        _model_tables(all_model_outputs, dks_histograms, "dks_histograms", run)
    )
    table = symmetry_by_model(histograms)
    return table, _markdown(table, SYMMETRY_DECIMALS)


# --- Transfer -----------------------------------------------------------------------------------


def transfer_tables(
    transfer_results: pd.DataFrame, dataset: str, source_model: str
) -> tuple[pd.DataFrame, str]:
    """This dataset's transfer results, one row per embedding and selection (mean and standard
    deviation over the repetitions), as a frame (for CSV) and as Markdown."""
    study.check_run(transfer_results, "transfer_results", dataset, source_model)
    table = transfer_summary.summarise(transfer_results)
    shown = transfer_summary.report_table(table)
    return table, _markdown(shown, transfer_summary.REPORT_TABLE_DECIMALS)


def plot_transfer_by_layer(
    transfer_results: pd.DataFrame, dataset: str, source_model: str
) -> Figure:
    """Accuracy of each layer, with the full network, FNE and best DKS-ranked levels across."""
    study.check_run(transfer_results, "transfer_results", dataset, source_model)
    return figures.transfer_by_layer_figure(
        transfer_results, dataset=dataset, source_model=source_model
    )


def plot_transfer_curve(transfer_results: pd.DataFrame, dataset: str, source_model: str) -> Figure:
    """Accuracy against features kept, DKS-ranked against random, continuous and three-valued."""
    study.check_run(transfer_results, "transfer_results", dataset, source_model)
    return figures.transfer_curve_figure(
        transfer_results, dataset=dataset, source_model=source_model
    )


def plot_embedding_maps(embedding_maps: pd.DataFrame, dataset: str, source_model: str) -> Figure:
    """The 2-D maps of the embeddings, one panel each, points coloured by class."""
    study.check_run(embedding_maps, "embedding_maps", dataset, source_model)
    return figures.embedding_maps_figure(embedding_maps, dataset=dataset, source_model=source_model)


def transfer_results_by_model(
    all_model_outputs: Partitions,
    transfer_results: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> list[pd.DataFrame]:
    """Every `<model>/transfer_results/<dataset>` table stored, this run's replacing its own."""
    run = RunName(dataset, source_model)
    tables = _model_tables(all_model_outputs, transfer_results, "transfer_results", run)
    for key, table in tables.items():
        model, _, name = split_model_table_key(key)
        shown = "transfer_results" if (model, name) == (source_model, dataset) else key
        study.check_run(table, shown, name, model)
    logger.info("Transfer across datasets and source models: %d table(s)", len(tables))
    return list(tables.values())


def cross_model_transfer_table(
    all_model_outputs: Partitions,
    transfer_results: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> tuple[pd.DataFrame, str]:
    """Best layer, best selection, full network and FNE accuracy per dataset and source model."""
    table = transfer_summary.across_table(
        transfer_results_by_model(all_model_outputs, transfer_results, dataset, source_model)
    )
    return table, _markdown(table, transfer_summary.ACROSS_TABLE_DECIMALS)


# --- Reports ------------------------------------------------------------------------------------


def write_dataset_report(
    dataset_properties: pd.DataFrame,
    thresholds: pd.DataFrame,
    dks_histograms: pd.DataFrame,
    transfer_results: pd.DataFrame,
    options: dict[str, Any],
    dataset: str,
    source_model: str,
    **report_figures: Any,
) -> tuple[dict[str, Figure], str, str]:
    """The report of one dataset on one source model: figures (PNG files), Markdown and HTML.

    `report_figures` are the fields of `DatasetFigures` (figure_1, ..., top_features).
    """
    drawn = DatasetFigures(**report_figures)
    report = dataset_report(
        dataset_properties,
        thresholds,
        dks_histograms,
        transfer_results,
        tuple(drawn.top_features),
        RunName(dataset, source_model),
    )
    by_name = drawn.by_file_name()
    return by_name, *render_report(report, by_name, int(options["html_dpi"]))


def write_index_report(
    study_dataset_properties: pd.DataFrame,
    study_thresholds: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    study_transfer: pd.DataFrame,
    study_dks_symmetry: pd.DataFrame,
    options: dict[str, Any],
    source_model: str,
    **index_figures: Any,
) -> tuple[dict[str, Figure], str, str]:
    """The index across every dataset run on one source model: figures, Markdown and HTML.

    `index_figures` are the fields of `IndexFigures` (figure_5, ..., figure_5_by_model).
    """
    drawn = IndexFigures(**index_figures)
    tables = IndexTables(
        study_dataset_properties,
        study_thresholds,
        threshold_fit,
        study_transfer,
        study_dks_symmetry,
    )
    report = index_report(tables, drawn, source_model)
    by_name = drawn.by_file_name()
    return by_name, *render_report(report, by_name, int(options["html_dpi"]))
