"""Report assembly: rounding, Markdown tables, the self-contained HTML page."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from cnn_feature_behavior.reporting.figures import new_figure
from cnn_feature_behavior.reporting.report import (
    Report,
    Section,
    figure_png,
    format_table,
    markdown_table,
    render_html,
    render_markdown,
)


def test_format_table_rounds_per_column_and_separates_thousands():
    frame = pd.DataFrame(
        {
            "dataset": ["imagenet"],
            "n_images": [50000],
            "t_plus": [0.150123],
            "davg_t_plus": [3100.44],
            "mean_images_per_class": [49.96],
            "r_squared": [np.nan],
            "other": [1.23456],
            "seed": [2018],
        }
    )
    cells = format_table(frame).cells.iloc[0].to_dict()
    assert cells == {
        "dataset": "imagenet",
        "n_images": "50,000",
        "t_plus": "0.150",
        "davg_t_plus": "3,100.4",
        "mean_images_per_class": "50.0",
        "r_squared": "n/a",
        "other": "1.235",
        "seed": "2018",
    }
    assert format_table(frame, {"other": 1}).cells.loc[0, "other"] == "1.2"


def test_markdown_table_aligns_numbers_and_escapes_pipes():
    table = format_table(
        pd.DataFrame({"class_name": ["a|b", "c"], "n_images": [3, 1200]}), caption="Sizes"
    )
    lines = markdown_table(table).splitlines()
    assert lines[0] == "*Sizes*"
    assert lines[2] == "| class_name | n_images |"
    assert lines[3] == "|---|---:|"
    assert lines[4] == "| a\\|b | 3 |"
    assert lines[5] == "| c | 1,200 |"


def small_figure(colour: str):
    figure = new_figure(3, 2)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color=colour, label="line")
    axes.set_title("t")
    return figure


@pytest.fixture
def report() -> Report:
    return Report(
        title="digits <on> vgg16",
        intro="Intro & more.",
        sections=(
            Section(
                "Tables",
                text="First paragraph.\n\nSecond paragraph.",
                tables=(format_table(pd.DataFrame({"t_plus": [0.1234]})),),
            ),
            Section("Links", links=(("Index", "../index.html"),)),
            Section("Figures", figures=("one.png", "two.png")),
        ),
    )


def test_render_markdown_has_every_section_in_order(report):
    text = render_markdown(report)
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings == ["Tables", "Links", "Figures"]
    assert text.startswith("# digits <on> vgg16\n")
    assert "| 0.123 |" in text
    assert "- [Index](../index.html)" in text
    assert text.index("![Figures](one.png)") < text.index("![Figures](two.png)")


def test_render_html_embeds_every_figure_and_escapes_text(report):
    pngs = {
        "one.png": figure_png(small_figure("red"), 50),
        "two.png": figure_png(small_figure("blue"), 50),
    }
    page = render_html(report, pngs)
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>digits &lt;on&gt; vgg16</title>" in page
    assert "Intro &amp; more." in page
    assert page.count("<p>") == 3  # intro and two paragraphs
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [base64.b64decode(data) for data in embedded] == [pngs["one.png"], pngs["two.png"]]
    assert '<td class="num">0.123</td>' in page
    assert '<a href="../index.html">Index</a>' in page
    # Self-contained: outside the embedded images there is nothing to fetch.
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)


def test_render_html_names_a_missing_figure(report):
    with pytest.raises(ValueError, match=r"no rendered figure for \['two.png'\]"):
        render_html(report, {"one.png": b"png"})


def test_figure_png_is_a_png():
    data = figure_png(small_figure("green"), 40)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
