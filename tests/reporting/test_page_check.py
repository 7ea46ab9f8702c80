"""The reports fit a 1,400-pixel browser window: headless Chromium lays out a dataset report and
an index with the widest tables a study writes (112 layers, two source models) and finds no
horizontal overflow. Skipped where Chromium is not installed."""

from __future__ import annotations

import pandas as pd
import pytest
from builders.report_synthetic import (
    many_layers,
    report_part_outputs,
    synthetic_few_shot_results,
    synthetic_retrieval_scores,
    synthetic_study,
    synthetic_transfer_comparisons,
    synthetic_transfer_results,
    threshold_fit,
)

from cnn_feature_behavior.pipelines.reporting import parts
from cnn_feature_behavior.reporting.figures import new_figure
from cnn_feature_behavior.reporting.page_check import find_chromium, page_width

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="Chromium is not installed (Debian: apt-get install chromium): no page check",
)
MODEL = "efficientnet_lite0_imagenet"


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict:
    """report.html and index.html of a 112-layer study, written by the parts' writers."""
    folder = tmp_path_factory.mktemp("pages")
    layers = many_layers(110)
    study = synthetic_study("caltech101", 5, 12, layers=layers, source_model=MODEL)
    results = synthetic_transfer_results("caltech101", MODEL, layers=list(layers))
    other = synthetic_transfer_results("caltech101", "vgg16_imagenet", repetitions=1)
    figure = new_figure(4, 3)
    figure.subplots().plot([0, 1], [0, 1])
    inputs = {
        **study,
        "transfer_results": results,
        "transfer_comparisons": synthetic_transfer_comparisons(results),
        "retrieval_scores": synthetic_retrieval_scores("caltech101", MODEL, layers=list(layers)),
        "few_shot_results": synthetic_few_shot_results("caltech101", MODEL, layers=list(layers)),
        "threshold_fit": threshold_fit(study["thresholds"]),
        "params:dataset": "caltech101",
        "params:source_model": MODEL,
        "all_thresholds": {},
        "all_dataset_properties": {},
        "all_model_outputs": {
            "vgg16_imagenet/transfer_results/caltech101": lambda: other,
            "vgg16_imagenet/dks_histograms/caltech101": lambda: study["dks_histograms"],
        },
    }
    options = {"html_dpi": 40}
    *_, report = parts.write_dataset_report(
        options,
        "caltech101",
        MODEL,
        *report_part_outputs(parts.DATASET_REPORT_PARTS, inputs, figure),
    )
    *_, index = parts.write_index_report(
        options, MODEL, *report_part_outputs(parts.INDEX_PARTS, inputs, figure)
    )
    written = {"report": folder / "report.html", "index": folder / "index.html"}
    written["report"].write_text(report)
    written["index"].write_text(index)
    return written


@pytest.mark.parametrize("page", ["report", "index"])
def test_the_page_fits_1400_pixels(pages, page):
    result = page_width(pages[page], 1400)
    assert result.fits, str(result)


def test_a_page_wider_than_the_window_is_found(tmp_path):
    wide = tmp_path / "wide.html"
    table = pd.DataFrame({"a": ["x" * 10]}).to_html()
    wide.write_text(f'<html><body><div style="width: 3000px">{table}</div></body></html>')
    result = page_width(wide, 1400, screenshot=tmp_path / "wide.png")
    assert not result.fits and result.overflow >= 1500
    assert (tmp_path / "wide.png").stat().st_size > 1000
