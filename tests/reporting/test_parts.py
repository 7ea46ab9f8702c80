"""The table of report parts: every row names a section of its report, a unique dataset, node
and file; the writers refuse outputs that do not match the table."""

from __future__ import annotations

import pytest

from cnn_feature_behavior.pipelines.reporting import parts
from cnn_feature_behavior.reporting import dataset_report, index_report
from cnn_feature_behavior.reporting.figures import new_figure

REPORTS = {
    "dataset report": (parts.DATASET_REPORT_PARTS, dataset_report.OUTLINE),
    "index": (parts.INDEX_PARTS, index_report.OUTLINE),
}


@pytest.mark.parametrize("report", REPORTS)
def test_every_part_is_shown_in_a_section_of_its_report(report):
    rows, outline = REPORTS[report]
    sections = {section.title for section in outline} | {parts.INTRO}
    assert [part.name for part in rows if part.section not in sections] == []
    files = [part.file for part in rows if part.file]
    assert len(files) == len(set(files))


def test_names_and_nodes_are_unique_across_both_reports():
    rows = parts.DATASET_REPORT_PARTS + parts.INDEX_PARTS
    for attribute in ("name", "node_name"):
        values = [getattr(part, attribute) for part in rows]
        assert sorted({v for v in values if values.count(v) > 1}) == []


def test_a_part_name_must_match_a_catalog_factory():
    with pytest.raises(ValueError, match="must start with"):
        parts.Part("chart_1", len, [], dataset_report.TABLE_2)


def test_the_writer_refuses_outputs_that_do_not_match_the_table():
    count = len(parts.DATASET_REPORT_PARTS)
    with pytest.raises(ValueError, match=f"1 part outputs for {count} parts"):
        parts.write_dataset_report({"html_dpi": 40}, "digits", "m", new_figure(1, 1))
