"""Reporting pipeline: this run's dataset report, then the study index across every dataset run.

Each figure node reads the study's tables and writes one figure (or a dict of them); the two
`write_*` nodes gather the figures into report.md / report.html and index.md / index.html.
"""

from kedro.pipeline import Pipeline, node

from . import nodes

DATASET = "params:dataset"
MODEL = "params:source_model"


def _dataset_figures() -> list:
    """The paper's figures of this dataset: 1, 6, 9, davg(x), 10, and 2-4 and 7 (top features)."""
    return [
        node(
            nodes.plot_feature_class_pair,
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
            nodes.plot_dks_histograms,
            ["dks_histograms", "dataset_properties", DATASET, MODEL],
            "figure_6_dks_histograms",
            name="plot_dks_histograms",
        ),
        node(
            nodes.plot_class_counts,
            ["class_counts", "thresholds", DATASET, MODEL],
            "figure_9_class_counts",
            name="plot_class_counts",
        ),
        node(
            nodes.plot_davg_curve,
            ["davg_curve", "thresholds", DATASET, MODEL],
            "figure_davg_curve",
            name="plot_davg_curve",
        ),
        node(
            nodes.plot_layer_kept,
            ["layer_kept", DATASET, MODEL],
            "figure_10_layer_kept",
            name="plot_layer_kept",
        ),
        node(
            nodes.plot_top_feature_patches,
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
    ]


def _transfer_figures() -> list:
    """This dataset's transfer table, accuracy per layer and per features kept, and 2-D maps."""
    return [
        node(
            nodes.transfer_tables,
            ["transfer_results", DATASET, MODEL],
            ["transfer_table_csv", "transfer_table_md"],
            name="transfer_tables",
        ),
        node(
            nodes.plot_transfer_by_layer,
            ["transfer_results", DATASET, MODEL],
            "figure_transfer_by_layer",
            name="plot_transfer_by_layer",
        ),
        node(
            nodes.plot_transfer_curve,
            ["transfer_results", DATASET, MODEL],
            "figure_transfer_curve",
            name="plot_transfer_curve",
        ),
        node(
            nodes.plot_embedding_maps,
            ["embedding_maps", DATASET, MODEL],
            "figure_embedding_maps",
            name="plot_embedding_maps",
        ),
    ]


def dataset_report_pipeline() -> list:
    """Tables 2 and 3 of this dataset, its figures, and report.md / report.html."""
    tables = node(
        nodes.dataset_tables,
        ["dataset_properties", "thresholds"],
        [
            "dataset_properties_row_csv",
            "dataset_properties_row_md",
            "thresholds_row_csv",
            "thresholds_row_md",
        ],
        name="dataset_report_tables",
    )
    report = node(
        nodes.write_dataset_report,
        {
            "dataset_properties": "dataset_properties",
            "thresholds": "thresholds",
            "dks_histograms": "dks_histograms",
            "transfer_results": "transfer_results",
            "options": "params:reporting",
            "dataset": DATASET,
            "source_model": MODEL,
            # The figures, by DatasetFigures' field names:
            "figure_1": "figure_1_feature_class_pair",
            "figure_6": "figure_6_dks_histograms",
            "figure_9": "figure_9_class_counts",
            "davg": "figure_davg_curve",
            "figure_10": "figure_10_layer_kept",
            "top_features": "top_feature_figures",
            "transfer_by_layer": "figure_transfer_by_layer",
            "transfer_curve": "figure_transfer_curve",
            "embedding_maps": "figure_embedding_maps",
        },
        ["dataset_report_figures", "dataset_report_md", "dataset_report_html"],
        name="write_dataset_report",
    )
    return [tables, *_dataset_figures(), *_transfer_figures(), report]


def _index_figures() -> list:
    """Figures 5, 6 and 8 and the threshold fit over every dataset run on this source model, and
    Figure 5 and transfer compared across source models."""
    return [
        node(
            nodes.plot_layer_summary_across_datasets,
            ["all_dks_layer_summary", "dks_layer_summary", DATASET, MODEL],
            "figure_5_layer_summary",
            name="plot_layer_summary_across_datasets",
        ),
        node(
            nodes.plot_dks_histograms_across_datasets,
            ["all_dks_histograms", "dks_histograms", "study_dataset_properties", DATASET, MODEL],
            "figure_6_across_datasets",
            name="plot_dks_histograms_across_datasets",
        ),
        node(
            nodes.plot_fc_histograms_by_overlap,
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
            nodes.plot_threshold_fit,
            ["study_thresholds", "threshold_fit", MODEL],
            "figure_threshold_fit",
            name="plot_threshold_fit",
        ),
        node(
            nodes.plot_layer_summary_by_source_model,
            ["all_model_outputs", "dks_layer_summary", DATASET, MODEL],
            "figure_5_by_source_model",
            name="plot_layer_summary_by_source_model",
        ),
        node(
            nodes.plot_dks_histograms_by_source_model,
            [
                "all_model_outputs",
                "dks_histograms",
                "all_dataset_properties",
                "dataset_properties",
                DATASET,
                MODEL,
            ],
            "figure_6_by_source_model",
            name="plot_dks_histograms_by_source_model",
        ),
        node(
            nodes.dks_symmetry_by_source_model,
            ["all_model_outputs", "dks_histograms", DATASET, MODEL],
            ["study_dks_symmetry", "study_dks_symmetry_md"],
            name="dks_symmetry_by_source_model",
        ),
        node(
            nodes.cross_model_transfer_table,
            ["all_model_outputs", "transfer_results", DATASET, MODEL],
            ["study_transfer", "study_transfer_md"],
            name="cross_model_transfer_table",
        ),
    ]


def index_pipeline() -> list:
    """Tables 2 and 3 across datasets, the index's figures, and index.md / index.html."""
    tables = node(
        nodes.cross_dataset_tables,
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
    )
    report = node(
        nodes.write_index_report,
        {
            "study_dataset_properties": "study_dataset_properties",
            "study_thresholds": "study_thresholds",
            "threshold_fit": "threshold_fit",
            "study_transfer": "study_transfer",
            "study_dks_symmetry": "study_dks_symmetry",
            "options": "params:reporting",
            "source_model": MODEL,
            # The figures, by IndexFigures' field names:
            "figure_5": "figure_5_layer_summary",
            "figure_6": "figure_6_across_datasets",
            "figure_8": "figure_8_fc_histograms",
            "threshold_fit_plot": "figure_threshold_fit",
            "figure_5_by_model": "figure_5_by_source_model",
            "figure_6_by_model": "figure_6_by_source_model",
        },
        ["index_figures", "index_md", "index_html"],
        name="write_index_report",
    )
    return [tables, *_index_figures(), report]


def create_pipeline(**kwargs) -> Pipeline:
    """This run's dataset report, then the index across every dataset run so far."""
    return Pipeline(
        dataset_report_pipeline() + index_pipeline(),
        namespace="reporting",
        prefix_datasets_with_namespace=False,
    )
