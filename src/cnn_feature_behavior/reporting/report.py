"""Report assembly: sections of text, rounded tables and figures, rendered as Markdown (figures
referenced by file name, beside it) and as one self-contained HTML page (figures embedded)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

# Decimals per column of the study's tables; other float columns get DEFAULT_DECIMALS.
COLUMN_DECIMALS: dict[str, int] = {
    "mean_images_per_class": 1,
    "t_plus": 3,
    "t_minus": 3,
    "davg_t_plus": 1,
    "davg_t_minus": 1,
    "a": 4,
    "b": 4,
    "r_squared": 3,
    "percent_real": 1,
    "percent_randomised": 1,
    "dks": 3,
}
DEFAULT_DECIMALS = 3
# Integers that are identifiers, not quantities: no thousands separator.
IDENTIFIER_COLUMNS = frozenset({"seed", "label", "class", "filter"})
MISSING = "n/a"


@dataclass(frozen=True)
class Table:
    """A caption and a table whose cells are already formatted text."""

    caption: str
    cells: pd.DataFrame


@dataclass(frozen=True)
class Section:
    """One titled part of a report: text, links, tables and figures (file names), in that order."""

    title: str
    text: str = ""
    links: tuple[tuple[str, str], ...] = ()  # (label, relative href)
    tables: tuple[Table, ...] = ()
    figures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    title: str
    intro: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class SectionOutline:
    """A section as a report's outline gives it: its title and the prose that does not depend on
    the run (`text` may name {dataset} and {source_model}); what it shows comes from the report's
    parts (pipelines/reporting/parts.py). `when_empty` replaces the text when no part has anything to show."""

    title: str
    text: str = ""
    links: tuple[tuple[str, str], ...] = ()
    when_empty: str = ""


def _format_number(value: object, decimals: int, separator: str = ",") -> str:
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):{separator}}"
    if isinstance(value, float | np.floating):
        return f"{float(value):,.{decimals}f}"
    return str(value)


def format_table(
    frame: pd.DataFrame, decimals: Mapping[str, int] | None = None, caption: str = ""
) -> Table:
    """Round numbers per column (COLUMN_DECIMALS, then `decimals`), thousands separated."""
    per_column = {**COLUMN_DECIMALS, **(decimals or {})}
    cells = pd.DataFrame(
        {
            str(column): [
                _format_number(
                    value,
                    per_column.get(str(column), DEFAULT_DECIMALS),
                    "" if column in IDENTIFIER_COLUMNS else ",",
                )
                for value in frame[column].tolist()
            ]
            for column in frame.columns
        },
        index=range(len(frame)),
    )
    return Table(caption=caption, cells=cells)


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    """A GitHub-flavoured pipe table; numeric-looking columns right-aligned."""
    cells = table.cells
    header = "| " + " | ".join(_markdown_cell(column) for column in cells.columns) + " |"
    rule = (
        "|"
        + "|".join(
            "---:" if _is_numeric_column(cells[column]) else "---" for column in cells.columns
        )
        + "|"
    )
    rows = [
        "| " + " | ".join(_markdown_cell(value) for value in row) + " |"
        for row in cells.itertuples(index=False)
    ]
    lines = ([f"*{table.caption}*", ""] if table.caption else []) + [header, rule, *rows]
    return "\n".join(lines)


def _is_numeric_column(column: pd.Series) -> bool:
    def numeric(text: str) -> bool:
        try:
            float(text.replace(",", ""))
        except ValueError:
            return text == MISSING
        return True

    return len(column) > 0 and all(numeric(text) for text in column)


def render_markdown(report: Report) -> str:
    """The report as Markdown; figures are referenced by file name, relative to the report."""
    parts = [f"# {report.title}", "", report.intro, ""]
    for section in report.sections:
        parts += [f"## {section.title}", ""]
        if section.text:
            parts += [section.text, ""]
        parts += [f"- [{label}]({href})" for label, href in section.links]
        if section.links:
            parts.append("")
        for table in section.tables:
            parts += [markdown_table(table), ""]
        for name in section.figures:
            parts += [f"![{section.title}]({name})", ""]
    return "\n".join(parts).rstrip() + "\n"


def figure_png(figure: Figure, dpi: int) -> bytes:
    """The figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# Tables never widen the page: their headers break after underscores, their text cells wrap, and
# a table still wider than the page scrolls inside its own box (checked by page_check).
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; overflow-wrap: anywhere; }
.table-box { max-width: 100%; overflow-x: auto; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; overflow-wrap: normal; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: 0.3em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
"""


def html_table(table: Table) -> str:
    cells = table.cells
    numeric = {column: _is_numeric_column(cells[column]) for column in cells.columns}
    head = "".join(f"<th>{_breakable(column)}</th>" for column in cells.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{html.escape(value)}</td>'
            if numeric[column]
            else f"<td>{html.escape(value)}</td>"
            for column, value in zip(cells.columns, row)
        )
        + "</tr>"
        for row in cells.itertuples(index=False)
    )
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return (
        f'<div class="table-box"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _breakable(name: str) -> str:
    """A column name that may break after its underscores (mean_per_class_accuracy_std)."""
    return "_<wbr>".join(html.escape(part) for part in name.split("_"))


def render_html(report: Report, figure_pngs: Mapping[str, bytes]) -> str:
    """The report as one HTML page with every figure embedded as a base64 PNG."""
    missing = [
        name for section in report.sections for name in section.figures if name not in figure_pngs
    ]
    if missing:
        raise ValueError(f"report '{report.title}': no rendered figure for {missing}")
    body = [f"<h1>{html.escape(report.title)}</h1>", f"<p>{html.escape(report.intro)}</p>"]
    for section in report.sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        body += [
            f"<p>{html.escape(paragraph)}</p>"
            for paragraph in section.text.split("\n\n")
            if paragraph
        ]
        if section.links:
            body.append(
                "<ul>"
                + "".join(
                    f'<li><a href="{html.escape(href)}">{html.escape(label)}</a></li>'
                    for label, href in section.links
                )
                + "</ul>"
            )
        body += [html_table(table) for table in section.tables]
        for name in section.figures:
            encoded = base64.b64encode(figure_pngs[name]).decode("ascii")
            body.append(
                f'<img alt="{html.escape(section.title)} ({html.escape(name)})" '
                f'src="data:image/png;base64,{encoded}">'
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(report.title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def render_report(
    report: Report, figures_by_name: Mapping[str, Figure], dpi: int
) -> tuple[str, str]:
    """The report as Markdown (figures referenced by file name) and as HTML (figures embedded
    as PNG at `dpi`)."""
    pngs = {name: figure_png(figure, dpi) for name, figure in figures_by_name.items()}
    return render_markdown(report), render_html(report, pngs)
