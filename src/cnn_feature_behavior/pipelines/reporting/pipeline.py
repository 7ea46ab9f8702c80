"""Reporting pipeline: per-dataset report, then the index across every dataset run so far."""

from kedro.pipeline import Pipeline, node

from cnn_feature_behavior.reporting.feature_visualisation import top_feature_patches_figures

from .nodes import (
    cross_dataset_tables,
    cross_model_transfer_table,
    dataset_tables,
    plot_class_counts,
    plot_davg_curve,
    plot_dks_histograms,
    plot_dks_histograms_across_datasets,
    plot_embedding_maps,
    plot_fc_histograms_by_overlap,
    plot_feature_class_pair,
    plot_layer_kept,
    plot_layer_summary_across_datasets,
    plot_layer_summary_by_source_model,
    plot_threshold_fit,
    plot_transfer_by_layer,
    plot_transfer_curve,
    transfer_tables,
    write_dataset_report,
    write_index_report,
)

DATASET = "params:dataset"
MODEL = "params:source_model"


def create_pipeline(**kwargs) -> Pipeline:
    """Figures and tables of this run's dataset, its report, then the cross-dataset index."""
    per_dataset = [
        node(
            dataset_tables,
            ["dataset_properties", "thresholds"],
            [
                "dataset_properties_row_csv",
                "dataset_properties_row_md",
                "thresholds_row_csv",
                "thresholds_row_md",
            ],
            name="dataset_report_tables",
        ),
        node(
            plot_feature_class_pair,
            [
                "dks",
                "embedding_columns",
                "image_index",
                "params:reporting.figure_1",
                "params:dks.bins",
                DATASET,
            ],
            "figure_1_feature_class_pair",
            name="plot_feature_class_pair",
        ),
        node(
            plot_dks_histograms,
            ["dks_histograms", "dataset_properties", DATASET, MODEL],
            "figure_6_dks_histograms",
            name="plot_dks_histograms",
        ),
        node(
            plot_class_counts,
            ["class_counts", "thresholds", DATASET, MODEL],
            "figure_9_class_counts",
            name="plot_class_counts",
        ),
        node(
            plot_davg_curve,
            ["davg_curve", "thresholds", DATASET, MODEL],
            "figure_davg_curve",
            name="plot_davg_curve",
        ),
        node(
            plot_layer_kept,
            ["layer_kept", DATASET, MODEL],
            "figure_10_layer_kept",
            name="plot_layer_kept",
        ),
        node(
            top_feature_patches_figures,
            [
                "dks",
                "image_index",
                "params:raw_dir",
                MODEL,
                "params:source_models",
                "params:reporting.feature_visualisation",
                "params:feature_extraction",
            ],
            "top_feature_figures",
            name="plot_top_feature_patches",
        ),
        node(
            transfer_tables,
            ["transfer_results", DATASET, MODEL],
            ["transfer_table_csv", "transfer_table_md"],
            name="transfer_tables",
        ),
        node(
            plot_transfer_by_layer,
            ["transfer_results", DATASET, MODEL],
            "figure_transfer_by_layer",
            name="plot_transfer_by_layer",
        ),
        node(
            plot_transfer_curve,
            ["transfer_results", DATASET, MODEL],
            "figure_transfer_curve",
            name="plot_transfer_curve",
        ),
        node(
            plot_embedding_maps,
            ["embedding_maps", DATASET, MODEL],
            "figure_embedding_maps",
            name="plot_embedding_maps",
        ),
        node(
            write_dataset_report,
            [
                "dataset_properties",
                "thresholds",
                "figure_1_feature_class_pair",
                "figure_6_dks_histograms",
                "figure_9_class_counts",
                "figure_davg_curve",
                "figure_10_layer_kept",
                "top_feature_figures",
                "transfer_results",
                "figure_transfer_by_layer",
                "figure_transfer_curve",
                "figure_embedding_maps",
                "params:reporting",
                DATASET,
                MODEL,
            ],
            ["dataset_report_figures", "dataset_report_md", "dataset_report_html"],
            name="write_dataset_report",
        ),
    ]
    across_datasets = [
        node(
            cross_dataset_tables,
            [
                "all_dataset_properties",
                "dataset_properties",
                "all_thresholds",
                "thresholds",
                "threshold_fit",
                DATASET,
            ],
            [
                "study_dataset_properties",
                "study_dataset_properties_md",
                "study_thresholds",
                "study_thresholds_md",
                "study_threshold_fit",
                "study_threshold_fit_md",
            ],
            name="cross_dataset_tables",
        ),
        node(
            plot_layer_summary_across_datasets,
            ["all_dks_layer_summary", "dks_layer_summary", DATASET, MODEL],
            "figure_5_layer_summary",
            name="plot_layer_summary_across_datasets",
        ),
        node(
            plot_dks_histograms_across_datasets,
            ["all_dks_histograms", "dks_histograms", "study_dataset_properties", DATASET, MODEL],
            "figure_6_across_datasets",
            name="plot_dks_histograms_across_datasets",
        ),
        node(
            plot_fc_histograms_by_overlap,
            [
                "all_dks_histograms",
                "dks_histograms",
                "study_dataset_properties",
                "params:reporting.imagenet_overlap_groups",
                DATASET,
                MODEL,
            ],
            "figure_8_fc_histograms",
            name="plot_fc_histograms_by_overlap",
        ),
        node(
            plot_threshold_fit,
            ["study_thresholds", "threshold_fit", MODEL],
            "figure_threshold_fit",
            name="plot_threshold_fit",
        ),
        node(
            plot_layer_summary_by_source_model,
            ["all_model_outputs", "dks_layer_summary", DATASET, MODEL],
            "figure_5_by_source_model",
            name="plot_layer_summary_by_source_model",
        ),
        node(
            cross_model_transfer_table,
            ["all_model_outputs", "transfer_results", DATASET, MODEL],
            ["study_transfer", "study_transfer_md"],
            name="cross_model_transfer_table",
        ),
        node(
            write_index_report,
            [
                "study_dataset_properties",
                "study_thresholds",
                "threshold_fit",
                "figure_5_layer_summary",
                "figure_6_across_datasets",
                "figure_8_fc_histograms",
                "figure_threshold_fit",
                "figure_5_by_source_model",
                "study_transfer",
                "params:reporting",
                MODEL,
            ],
            ["index_figures", "index_md", "index_html"],
            name="write_index_report",
        ),
    ]
    return Pipeline(
        per_dataset + across_datasets, namespace="reporting", prefix_datasets_with_namespace=False
    )
