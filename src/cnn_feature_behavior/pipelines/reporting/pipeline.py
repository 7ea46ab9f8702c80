"""Reporting pipeline: this run's dataset report, then the study index across every dataset run.

One node per report part (cnn_feature_behavior.pipelines.reporting.parts: a figure, a table or a
paragraph), then each report's writer, which gathers its parts into Markdown beside the PNG,
CSV and Markdown files, and one self-contained HTML page.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline, node

from cnn_feature_behavior.pipelines.reporting import parts


def _part_nodes(report_parts: tuple[parts.Part, ...]) -> list[Node]:
    return [node(part.func, part.inputs, part.name, name=part.node_name) for part in report_parts]


def dataset_report_pipeline() -> list[Node]:
    """The dataset report's parts, then report.md / report.html and its figures and tables."""
    report = node(
        parts.write_dataset_report,
        ["params:reporting", parts.DATASET, parts.MODEL]
        + parts.writer_inputs(parts.DATASET_REPORT_PARTS),
        [
            "dataset_report_figures",
            "dataset_report_tables_csv",
            "dataset_report_tables_md",
            "dataset_report_md",
            "dataset_report_html",
        ],
        name="write_dataset_report",
    )
    return [*_part_nodes(parts.DATASET_REPORT_PARTS), report]


def index_pipeline() -> list[Node]:
    """The index's parts, then index.md / index.html and its figures and tables."""
    report = node(
        parts.write_index_report,
        ["params:reporting", parts.MODEL] + parts.writer_inputs(parts.INDEX_PARTS),
        ["index_figures", "index_tables_csv", "index_tables_md", "index_md", "index_html"],
        name="write_index_report",
    )
    return [*_part_nodes(parts.INDEX_PARTS), report]


def create_pipeline(**kwargs) -> Pipeline:
    """This run's dataset report, then the index across every dataset run so far."""
    return Pipeline(
        dataset_report_pipeline() + index_pipeline(),
        namespace="reporting",
        prefix_datasets_with_namespace=False,
    )
