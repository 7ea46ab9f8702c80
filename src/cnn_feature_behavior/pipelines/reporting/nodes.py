"""Reporting nodes: the paper's tables, figures and prose for one dataset and across datasets.

Each function here is one part of a report, listed with its inputs, its section and its file in
`cnn_feature_behavior.pipelines.reporting.parts`, which also holds the two writers that gather the parts
into report.md / report.html and index.md / index.html.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from cnn_feature_behavior.extraction import top_patches
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.reporting import (
    dataset_report,
    figures,
    index_report,
    search_and_few_shot,
    study,
    transfer_summary,
)
from cnn_feature_behavior.reporting.dataset_report import RunName, one_row
from cnn_feature_behavior.reporting.figures import top_features
from cnn_feature_behavior.reporting.index_report import (
    FIGURE_5_BY_MODEL,
    FIGURE_6_BY_MODEL,
    FIGURE_8,
)
from cnn_feature_behavior.reporting.symmetry import dks_symmetry, symmetry_by_model
from cnn_feature_behavior.statistics import partitions as partitions_core
from cnn_feature_behavior.statistics.partitions import (
    gather_dataset_tables,
    model_table_key,
    split_model_table_key,
)

logger = logging.getLogger(__name__)

Partitions = Mapping[str, Callable[[], pd.DataFrame]]


# --- Text and tables ----------------------------------------------------------------------------


def report_intro(
    dataset_properties: pd.DataFrame, thresholds: pd.DataFrame, dataset: str, source_model: str
) -> str:
    """The dataset report's opening: the dataset's size and its thresholds."""
    return dataset_report.intro(dataset_properties, thresholds, RunName(dataset, source_model))


def weights_text(weights_provenance: pd.DataFrame) -> str:
    """The report's sentence on the source model's weights: published or not."""
    return dataset_report.weights_sentence(weights_provenance)


def dataset_properties_row(dataset_properties: pd.DataFrame) -> pd.DataFrame:
    """This dataset's Table 2 row."""
    one_row(dataset_properties, "dataset_properties")
    return dataset_properties


def thresholds_row(thresholds: pd.DataFrame) -> pd.DataFrame:
    """This dataset's Table 3 row."""
    one_row(thresholds, "thresholds")
    return thresholds


def dks_symmetry_of_dataset(dks_histograms: pd.DataFrame) -> pd.DataFrame:
    """Mean, skewness and share above 0 of this dataset's spatial and head features' DKS."""
    return dks_symmetry(dks_histograms)


def study_thresholds_table(
    all_thresholds: Partitions, thresholds: pd.DataFrame, dataset: str
) -> pd.DataFrame:
    """Table 3 over every dataset run so far on this source model, by mean images per class."""
    return study.by_images_per_class(
        gather_dataset_tables(all_thresholds, thresholds, dataset, "thresholds")
    )


def study_dataset_properties_table(
    all_dataset_properties: Partitions,
    dataset_properties: pd.DataFrame,
    study_thresholds: pd.DataFrame,
    dataset: str,
) -> pd.DataFrame:
    """Table 2 over the datasets of Table 3 (those calibrated on this source model)."""
    properties = study.by_images_per_class(
        gather_dataset_tables(
            all_dataset_properties, dataset_properties, dataset, "dataset_properties"
        )
    )
    return study.only_datasets_calibrated(properties, study_thresholds)


def threshold_fit_table(threshold_fit: pd.DataFrame) -> pd.DataFrame:
    """The fit of t+ and t- against images per class, as the calibration pipeline wrote it."""
    return threshold_fit


def index_intro(study_thresholds: pd.DataFrame, source_model: str) -> str:
    """The index's opening: the datasets it covers."""
    return index_report.intro(study_thresholds, source_model)


def dataset_report_links(study_thresholds: pd.DataFrame) -> tuple[tuple[str, str], ...]:
    """A link to each dataset's report."""
    return index_report.report_links(study_thresholds)


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
) -> dict[str, Figure]:
    """Figure 8 over every dataset run so far for this source model; empty when none of them
    has head layers (the index says so)."""
    histograms = gather_dataset_tables(
        all_dks_histograms, dks_histograms, dataset, "dks_histograms"
    )
    figure = figures.fc_histograms_by_overlap_figure(
        histograms,
        overlap_groups,
        study.mean_images(study_dataset_properties),
        source_model=source_model,
    )
    return {} if figure is None else {FIGURE_8: figure}


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
) -> pd.DataFrame:
    """Mean, skewness and share above 0 of the DKS of spatial and of head features, for every
    dataset and source model stored: the paper's symmetry finding, checkable across models."""
    run = RunName(dataset, source_model)
    histograms = study.tables_by_model(
        _model_tables(all_model_outputs, dks_histograms, "dks_histograms", run)
    )
    return symmetry_by_model(histograms)


# --- Transfer -----------------------------------------------------------------------------------


def _check_transfer(results, comparisons, dataset: str, source_model: str) -> None:
    study.check_run(results, "transfer_results", dataset, source_model)
    study.check_run(comparisons, "transfer_comparisons", dataset, source_model)


def transfer_text(
    transfer_results: pd.DataFrame,
    transfer_comparisons: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> str:
    """The transfer verdict and how the transfer was evaluated."""
    _check_transfer(transfer_results, transfer_comparisons, dataset, source_model)
    return dataset_report.transfer_text(transfer_results, transfer_comparisons)


def transfer_tables(
    transfer_results: pd.DataFrame,
    transfer_comparisons: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> pd.DataFrame:
    """This dataset's transfer results, one row per embedding and selection (means over the
    repetitions and draws, the 95% interval of the mean per-class accuracy)."""
    _check_transfer(transfer_results, transfer_comparisons, dataset, source_model)
    return transfer_summary.summarise(transfer_results, transfer_comparisons)


def transfer_comparison_table(
    transfer_comparisons: pd.DataFrame, dataset: str, source_model: str
) -> pd.DataFrame:
    """This dataset's paired differences with their intervals and verdicts, as stored."""
    study.check_run(transfer_comparisons, "transfer_comparisons", dataset, source_model)
    return transfer_comparisons


def plot_transfer_by_layer(
    transfer_results: pd.DataFrame,
    transfer_comparisons: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> Figure:
    """Each layer's mean per-class accuracy, with the full network, FNE and best selection."""
    _check_transfer(transfer_results, transfer_comparisons, dataset, source_model)
    return figures.transfer_by_layer_figure(
        transfer_results, transfer_comparisons, dataset=dataset, source_model=source_model
    )


def plot_transfer_curve(
    transfer_results: pd.DataFrame,
    transfer_comparisons: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> Figure:
    """Mean per-class accuracy against features kept: DKS-ranked, ANOVA-F and random."""
    _check_transfer(transfer_results, transfer_comparisons, dataset, source_model)
    return figures.transfer_curve_figure(
        transfer_results, transfer_comparisons, dataset=dataset, source_model=source_model
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
    transfer_comparisons: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> pd.DataFrame:
    """Best layer and best selection (by cross-validated score) with their intervals, full
    network and FNE, per dataset and source model."""
    results = transfer_results_by_model(all_model_outputs, transfer_results, dataset, source_model)
    run = RunName(dataset, source_model)
    compared = _model_tables(all_model_outputs, transfer_comparisons, "transfer_comparisons", run)
    by_run = {}
    for key, table in compared.items():
        model, _, name = split_model_table_key(key)
        study.check_run(table, key, name, model)
        by_run[(name, model)] = table
    return transfer_summary.across_table(
        [
            (table, by_run.get((table["dataset"].iloc[0], table["source_model"].iloc[0])))
            for table in results
        ]
    )


def transfer_side_by_side(study_transfer: pd.DataFrame) -> pd.DataFrame:
    """Each source model's best single layer per dataset, side by side; empty under two models."""
    return study.transfer_side_by_side(study_transfer)


def index_transfer_text(side_by_side: pd.DataFrame) -> str:
    """What the index's transfer tables compare."""
    return index_report.transfer_text(side_by_side)


# --- Search and few-shot ------------------------------------------------------------------------


def search_text(
    retrieval_scores: pd.DataFrame,
    transfer_results: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> str:
    """Which embedding to use for search, and which layer for classification."""
    study.check_run(retrieval_scores, "retrieval_scores", dataset, source_model)
    return search_and_few_shot.search_verdict(retrieval_scores, transfer_results)


def search_table(
    retrieval_scores: pd.DataFrame,
    transfer_results: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> pd.DataFrame:
    """Per embedding, the retrieval mAP@10 with its interval beside the transfer accuracy."""
    study.check_run(retrieval_scores, "retrieval_scores", dataset, source_model)
    return search_and_few_shot.search_table(retrieval_scores, transfer_results)


def few_shot_text(few_shot_results: pd.DataFrame, dataset: str, source_model: str) -> str:
    """The best embedding per few-shot method and k."""
    study.check_run(few_shot_results, "few_shot_results", dataset, source_model)
    return search_and_few_shot.few_shot_verdict(few_shot_results)


def few_shot_table(few_shot_results: pd.DataFrame, dataset: str, source_model: str) -> pd.DataFrame:
    """Per embedding, the mean accuracy [95% interval] of each method and k."""
    study.check_run(few_shot_results, "few_shot_results", dataset, source_model)
    return search_and_few_shot.few_shot_table(few_shot_results)


def plot_few_shot(few_shot_results: pd.DataFrame, dataset: str, source_model: str) -> Figure:
    """Accuracy against shots per layer, one panel per method."""
    study.check_run(few_shot_results, "few_shot_results", dataset, source_model)
    return figures.few_shot_figure(few_shot_results, dataset=dataset, source_model=source_model)


def _stored_runs(
    all_model_outputs: Partitions, current: pd.DataFrame, table: str, run: RunName
) -> dict[str, pd.DataFrame]:
    """Every stored `<model>/<table>/<dataset>` table, this run's replacing its own, checked."""
    tables = _model_tables(all_model_outputs, current, table, run)
    for key, stored in tables.items():
        model, _, name = split_model_table_key(key)
        study.check_run(stored, key, name, model)
    return tables


def search_and_few_shot_across_datasets(
    all_model_outputs: Partitions,
    retrieval_scores: pd.DataFrame,
    few_shot_results: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> pd.DataFrame:
    """Best embedding for search and per few-shot method and k, per dataset and source model."""
    run = RunName(dataset, source_model)
    return search_and_few_shot.across_table(
        list(_stored_runs(all_model_outputs, retrieval_scores, "retrieval_scores", run).values()),
        list(_stored_runs(all_model_outputs, few_shot_results, "few_shot_results", run).values()),
    )


def plot_few_shot_across_datasets(
    all_model_outputs: Partitions,
    few_shot_results: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> Figure:
    """The logistic regression's few-shot accuracy against k per layer, a panel per dataset of
    this source model."""
    run = RunName(dataset, source_model)
    tables = _stored_runs(all_model_outputs, few_shot_results, "few_shot_results", run)
    mine = [t for key, t in tables.items() if split_model_table_key(key)[0] == source_model]
    return figures.few_shot_across_datasets_figure(
        mine, method="logistic_regression", source_model=source_model
    )
