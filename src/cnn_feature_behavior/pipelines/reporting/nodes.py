"""Reporting nodes: the paper's tables and figures for one dataset and across datasets, and the
reports that gather them (Markdown beside the PNG files, and a self-contained HTML page)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.reporting import figures, transfer_summary
from cnn_feature_behavior.reporting.report import (
    Report,
    Section,
    figure_png,
    format_table,
    markdown_table,
    render_html,
    render_markdown,
)

logger = logging.getLogger(__name__)

# File names of the figures, relative to the report that shows them.
FIGURE_1 = "figure_1_feature_class_pair.png"
FIGURE_6 = "figure_6_dks_histograms.png"
FIGURE_9 = "figure_9_class_counts.png"
DAVG = "davg_curve.png"
FIGURE_10 = "figure_10_layer_kept.png"
FIGURE_5 = "figure_5_layer_summary.png"
FIGURE_6_ACROSS = "figure_6_dks_histograms_across_datasets.png"
FIGURE_8 = "figure_8_fc_histograms.png"
THRESHOLD_FIT = "threshold_fit.png"
FIGURE_5_BY_MODEL = "figure_5_by_source_model.png"
FIGURE_TRANSFER_BY_LAYER = "transfer_accuracy_per_layer.png"
FIGURE_TRANSFER_CURVE = "transfer_accuracy_by_features_kept.png"
FIGURE_EMBEDDING_MAPS = "embedding_maps.png"

Partitions = Mapping[str, Callable[[], pd.DataFrame]]


def _one_row(table: pd.DataFrame, name: str) -> pd.Series:
    if len(table) != 1:
        raise ValueError(f"{name}: expected exactly one row, got {len(table)}")
    return table.iloc[0]


# --- Tables -------------------------------------------------------------------------------------


def dataset_tables(
    dataset_properties: pd.DataFrame, thresholds: pd.DataFrame
) -> tuple[pd.DataFrame, str, pd.DataFrame, str]:
    """This dataset's Table 2 row and Table 3 row, each as a frame (for CSV) and as Markdown."""
    _one_row(dataset_properties, "dataset_properties")
    _one_row(thresholds, "thresholds")
    return (
        dataset_properties,
        markdown_table(format_table(dataset_properties)) + "\n",
        thresholds,
        markdown_table(format_table(thresholds)) + "\n",
    )


def gather_partitions(
    partitions: Partitions, current: pd.DataFrame, current_key: str, name: str
) -> pd.DataFrame:
    """Every stored partition (one per dataset) with this run's table in place of its own file.

    Taking this run's table as an input is what orders the node after its producer.
    """
    frames = {key: load() for key, load in sorted(partitions.items()) if key != current_key}
    frames[current_key] = current
    for key, frame in frames.items():
        if "dataset" not in frame.columns or set(frame["dataset"]) != {key}:
            found = sorted(set(frame["dataset"])) if "dataset" in frame.columns else "no column"
            raise ValueError(f"{name}/{key}: the 'dataset' column must be {key!r}, found {found}")
    logger.info("%s: %d dataset(s): %s", name, len(frames), sorted(frames))
    return pd.concat(frames.values(), ignore_index=True)


def _by_images_per_class(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["mean_images_per_class", "dataset"], kind="stable").reset_index(
        drop=True
    )


def cross_dataset_tables(
    all_dataset_properties: Partitions,
    dataset_properties: pd.DataFrame,
    all_thresholds: Partitions,
    thresholds: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    dataset: str,
) -> tuple[pd.DataFrame, str, pd.DataFrame, str, pd.DataFrame, str]:
    """Tables 2 and 3 over every dataset run so far (by mean images per class) and the fit."""
    properties = _by_images_per_class(
        gather_partitions(all_dataset_properties, dataset_properties, dataset, "dataset_properties")
    )
    study_thresholds = _by_images_per_class(
        gather_partitions(all_thresholds, thresholds, dataset, "thresholds")
    )
    # Dataset properties are shared by every source model: keep the datasets run on this one.
    not_run = sorted(set(properties["dataset"]) - set(study_thresholds["dataset"]))
    if not_run:
        logger.info(
            "Table 2 across datasets leaves out %s: ingested but not calibrated on "
            "this source model",
            not_run,
        )
        properties = properties[~properties["dataset"].isin(not_run)].reset_index(drop=True)
    return (
        properties,
        markdown_table(format_table(properties)) + "\n",
        study_thresholds,
        markdown_table(format_table(study_thresholds)) + "\n",
        threshold_fit,
        markdown_table(format_table(threshold_fit)) + "\n",
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
        _mean_images(dataset_properties),
        title=f"Figure 6 - DKS distribution, {dataset} on {source_model}",
    )


def plot_class_counts(
    class_counts: pd.DataFrame, thresholds: pd.DataFrame, dataset: str, source_model: str
) -> Figure:
    """Figure 9 for this dataset, with its t+ and t- dashed."""
    row = _one_row(thresholds, "thresholds")
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
    row = _one_row(thresholds, "thresholds")
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


# --- Figures across datasets ---------------------------------------------------------------------


def _mean_images(table: pd.DataFrame) -> dict[str, float]:
    return table.groupby("dataset")["mean_images_per_class"].first().astype(float).to_dict()


def plot_layer_summary_across_datasets(
    all_dks_layer_summary: Partitions,
    dks_layer_summary: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> Figure:
    """Figure 5 over every dataset run so far for this source model."""
    summary = gather_partitions(
        all_dks_layer_summary, dks_layer_summary, dataset, "dks_layer_summary"
    )
    return figures.layer_summary_figure(summary, _mean_images(summary), source_model=source_model)


def plot_dks_histograms_across_datasets(
    all_dks_histograms: Partitions,
    dks_histograms: pd.DataFrame,
    study_dataset_properties: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> Figure:
    """Figure 6 over every dataset run so far for this source model."""
    histograms = gather_partitions(all_dks_histograms, dks_histograms, dataset, "dks_histograms")
    names = sorted(set(histograms["dataset"]))
    note = f" - only one dataset run so far: {names[0]}" if len(names) == 1 else ""
    return figures.dks_histograms_figure(
        histograms,
        _mean_images(study_dataset_properties),
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
    histograms = gather_partitions(all_dks_histograms, dks_histograms, dataset, "dks_histograms")
    return figures.fc_histograms_by_overlap_figure(
        histograms,
        overlap_groups,
        _mean_images(study_dataset_properties),
        source_model=source_model,
    )


def plot_threshold_fit(
    study_thresholds: pd.DataFrame, threshold_fit: pd.DataFrame, source_model: str
) -> Figure:
    """t+ and t- against mean images per class with the fitted logarithmic curves."""
    return figures.threshold_fit_figure(study_thresholds, threshold_fit, source_model=source_model)


def layer_summaries_by_model(
    all_model_outputs: Partitions,
    dks_layer_summary: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> dict[str, pd.DataFrame]:
    """Each source model's layer summaries, from `<model>/dks_layer_summary/<dataset>` files."""
    tables: dict[str, dict[str, pd.DataFrame]] = {}
    for key, load in sorted(all_model_outputs.items()):
        parts = key.split("/")
        if len(parts) == 3 and parts[1] == "dks_layer_summary":
            model, name = parts[0], parts[2]
            if (model, name) != (source_model, dataset):
                tables.setdefault(model, {})[name] = load()
    tables.setdefault(source_model, {})[dataset] = dks_layer_summary
    return {
        model: pd.concat(frames.values(), ignore_index=True) for model, frames in tables.items()
    }


def plot_layer_summary_by_source_model(
    all_model_outputs: Partitions,
    dks_layer_summary: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> dict[str, Figure]:
    """Figure 5 per source model side by side, over the datasets run for two models or more.

    Empty when fewer than two source models share a dataset; the index says so.
    """
    summaries = layer_summaries_by_model(
        all_model_outputs, dks_layer_summary, dataset, source_model
    )
    shared = _datasets_shared_by_models(summaries)
    if not shared:
        logger.info(
            "Figure 5 by source model: no dataset run for two models (models: %s)",
            sorted(summaries),
        )
        return {}
    compared = {
        model: table[table["dataset"].isin(shared)]
        for model, table in summaries.items()
        if table["dataset"].isin(shared).any()
    }
    everything = pd.concat(compared.values(), ignore_index=True)
    return {
        FIGURE_5_BY_MODEL: figures.layer_summary_by_model_figure(compared, _mean_images(everything))
    }


def _datasets_shared_by_models(summaries: Mapping[str, pd.DataFrame]) -> list[str]:
    runs = pd.Series([name for table in summaries.values() for name in set(table["dataset"])])
    counts = runs.value_counts()
    return sorted(counts[counts >= 2].index)


# --- Transfer -----------------------------------------------------------------------------------


def _check_run(table: pd.DataFrame, name: str, dataset: str, source_model: str) -> None:
    for column, expected in (("dataset", dataset), ("source_model", source_model)):
        if column not in table.columns:
            raise ValueError(f"{name}: no {column!r} column; it has {list(table.columns)}")
        found = sorted(set(table[column].astype(str)))
        if found != [expected]:
            raise ValueError(f"{name}: the {column!r} column must be {expected!r}, found {found}")


def transfer_tables(
    transfer_results: pd.DataFrame, dataset: str, source_model: str
) -> tuple[pd.DataFrame, str]:
    """This dataset's transfer results, one row per embedding and selection (mean and standard
    deviation over the repetitions), as a frame (for CSV) and as Markdown."""
    _check_run(transfer_results, "transfer_results", dataset, source_model)
    table = transfer_summary.summarise(transfer_results)
    shown = format_table(
        transfer_summary.report_table(table), transfer_summary.REPORT_TABLE_DECIMALS
    )
    return table, markdown_table(shown) + "\n"


def plot_transfer_by_layer(
    transfer_results: pd.DataFrame, dataset: str, source_model: str
) -> Figure:
    """Accuracy of each layer, with the full network, FNE and best DKS-ranked levels across."""
    _check_run(transfer_results, "transfer_results", dataset, source_model)
    return figures.transfer_by_layer_figure(
        transfer_results, dataset=dataset, source_model=source_model
    )


def plot_transfer_curve(transfer_results: pd.DataFrame, dataset: str, source_model: str) -> Figure:
    """Accuracy against features kept, DKS-ranked against random, continuous and three-valued."""
    _check_run(transfer_results, "transfer_results", dataset, source_model)
    return figures.transfer_curve_figure(
        transfer_results, dataset=dataset, source_model=source_model
    )


def plot_embedding_maps(embedding_maps: pd.DataFrame, dataset: str, source_model: str) -> Figure:
    """The 2-D maps of the embeddings, one panel each, points coloured by class."""
    _check_run(embedding_maps, "embedding_maps", dataset, source_model)
    return figures.embedding_maps_figure(embedding_maps, dataset=dataset, source_model=source_model)


def transfer_results_by_model(
    all_model_outputs: Partitions,
    transfer_results: pd.DataFrame,
    dataset: str,
    source_model: str,
) -> list[pd.DataFrame]:
    """Every `<model>/transfer_results/<dataset>` table stored, this run's replacing its own."""
    tables = []
    for key, load in sorted(all_model_outputs.items()):
        parts = key.split("/")
        if len(parts) == 3 and parts[1] == "transfer_results":
            model, name = parts[0], parts[2]
            if (model, name) != (source_model, dataset):
                table = load()
                _check_run(table, f"{model}/transfer_results/{name}", name, model)
                tables.append(table)
    _check_run(transfer_results, "transfer_results", dataset, source_model)
    tables.append(transfer_results)
    logger.info("Transfer across datasets and source models: %d table(s)", len(tables))
    return tables


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
    shown = format_table(table, transfer_summary.ACROSS_TABLE_DECIMALS)
    return table, markdown_table(shown) + "\n"


def _transfer_section(transfer_results: pd.DataFrame, figure_names: tuple[str, ...]) -> Section:
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


# --- Reports ------------------------------------------------------------------------------------


def _rendered(figures_by_name: Mapping[str, Figure], dpi: int) -> dict[str, bytes]:
    return {name: figure_png(figure, dpi) for name, figure in figures_by_name.items()}


def write_dataset_report(
    dataset_properties: pd.DataFrame,
    thresholds: pd.DataFrame,
    figure_1: Figure,
    figure_6: Figure,
    figure_9: Figure,
    davg: Figure,
    figure_10: Figure,
    top_feature_figures: dict[str, Figure],
    transfer_results: pd.DataFrame,
    transfer_by_layer: Figure,
    transfer_curve: Figure,
    embedding_maps: Figure,
    options: dict[str, Any],
    dataset: str,
    source_model: str,
) -> tuple[dict[str, Figure], str, str]:
    """The report of one dataset on one source model: figures (PNG files), Markdown and HTML."""
    properties = _one_row(dataset_properties, "dataset_properties")
    row = _one_row(thresholds, "thresholds")
    figures_by_name = {
        FIGURE_1: figure_1,
        FIGURE_6: figure_6,
        FIGURE_9: figure_9,
        DAVG: davg,
        FIGURE_10: figure_10,
        FIGURE_TRANSFER_BY_LAYER: transfer_by_layer,
        FIGURE_TRANSFER_CURVE: transfer_curve,
        FIGURE_EMBEDDING_MAPS: embedding_maps,
    }
    clashes = sorted(set(top_feature_figures) & set(figures_by_name))
    if clashes:
        raise ValueError(f"top-feature figures reuse the report's file names {clashes}")
    figures_by_name |= top_feature_figures
    report = Report(
        title=f"{dataset} on {source_model}",
        intro=(
            f"What each feature of {source_model} says about each of the "
            f"{int(properties['n_classes'])} classes of {dataset} "
            f"({int(properties['n_images'])} images), after Garcia-Gasulla et al. (JAIR 2018). "
            f"Thresholds: t+ = {row['t_plus']:+.3f}, t- = {row['t_minus']:+.3f}."
        ),
        sections=(
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
                "Figure 6: DKS distribution of conv and fc features",
                text="Share of (feature, class) pairs per DKS bin.",
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
            Section(
                "Figures 2, 3, 4 and 7: top features per class",
                text="For each class shown, the features with the highest DKS (presence) and "
                "the lowest (absence), each as the 9 patches of the reference pool that "
                "activate it most, cropped to its receptive field.",
                figures=tuple(top_feature_figures),
            ),
            _transfer_section(
                transfer_results,
                (FIGURE_TRANSFER_BY_LAYER, FIGURE_TRANSFER_CURVE, FIGURE_EMBEDDING_MAPS),
            ),
            Section(
                "Across datasets",
                text=f"Every dataset run so far on {source_model}: Figures 5 and 8, Tables 2 "
                "and 3, the threshold fit.",
                links=(("Study index", "../index.html"),),
            ),
        ),
    )
    html = render_html(report, _rendered(figures_by_name, int(options["html_dpi"])))
    return figures_by_name, render_markdown(report), html


def write_index_report(
    study_dataset_properties: pd.DataFrame,
    study_thresholds: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    figure_5: Figure,
    figure_6: Figure,
    figure_8: Figure,
    threshold_fit_plot: Figure,
    figure_5_by_model: dict[str, Figure],
    study_transfer: pd.DataFrame,
    options: dict[str, Any],
    source_model: str,
) -> tuple[dict[str, Figure], str, str]:
    """The index across every dataset run on one source model: figures, Markdown and HTML."""
    names = list(study_thresholds["dataset"])
    figures_by_name = {
        FIGURE_5: figure_5,
        FIGURE_6_ACROSS: figure_6,
        FIGURE_8: figure_8,
        THRESHOLD_FIT: threshold_fit_plot,
        **figure_5_by_model,
    }
    by_model = (
        Section("Figure 5 by source model", figures=tuple(figure_5_by_model))
        if figure_5_by_model
        else Section(
            "Figure 5 by source model",
            text="Not drawn: no dataset has been run for two source models yet.",
        )
    )
    report = Report(
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
                "Table 2: dataset properties", tables=(format_table(study_dataset_properties),)
            ),
            Section("Table 3: thresholds", tables=(format_table(study_thresholds),)),
            Section(
                "Thresholds against images per class",
                text="t = a + b ln(mean images per class), fitted over the datasets run.",
                tables=(format_table(threshold_fit),),
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
                "Figure 6: DKS of conv and fc features across datasets",
                text="Share of (feature, class) pairs per DKS bin, one line per dataset.",
                figures=(FIGURE_6_ACROSS,),
            ),
            Section("Figure 8: fc DKS by overlap with ImageNet", figures=(FIGURE_8,)),
            by_model,
            Section(
                "Transfer across datasets and source models",
                text="Per dataset and source model (every transfer run stored): the single layer "
                "with the best test accuracy, the full network and the FNE with every feature, "
                "and the best feature selection with a random selection of the same size; mean "
                "accuracy over the repetitions of seeded splits.",
                tables=(format_table(study_transfer, transfer_summary.ACROSS_TABLE_DECIMALS),),
            ),
        ),
    )
    html = render_html(report, _rendered(figures_by_name, int(options["html_dpi"])))
    return figures_by_name, render_markdown(report), html
