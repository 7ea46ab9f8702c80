"""The parts of the two reports, one row each: what makes it, from what, where it is shown.

The dataset report (`report.md` / `report.html` of one dataset on one source model) and the
study index (`index.md` / `index.html` across every dataset run on that source model) are each a
list of parts: a figure, a dict of figures, a table, a paragraph or a list of links. One row of
DATASET_REPORT_PARTS or INDEX_PARTS gives a part's

- name: the in-memory dataset it passes to its report's writer; it starts with `figure_`,
  `table_` or `text_`, which the factories of conf/base/catalog_reporting.yml resolve;
- func and inputs: its node in the reporting pipeline (`inputs` a list, or a dict of keyword
  arguments as Kedro takes them); the node is named after the function;
- section: the title of the section that shows it (`dataset_report.OUTLINE`,
  `index_report.OUTLINE`), or INTRO for the report's opening paragraph;
- file: a figure's PNG file, or a table's file stem (`<file>.csv` holds the whole table,
  `<file>.md` the table as shown), beside the report; None for a table shown only, or for a
  node that returns its figures as {file name: Figure} (the top features, Figure 5 by model);
- decimals and shown (tables only): decimals per column, and what of the table is shown (a
  function of the table; the CSV keeps every column).

The reporting pipeline (pipelines/reporting/pipeline.py) builds its nodes from these rows; the
writers below take the rows' outputs in the rows' order, put each into its section, write the
figures and tables beside the report, and render Markdown and HTML.

Adding a part
-------------
1. Write the function that makes it: a figure in `reporting/figures/` (DataFrames in, Figure
   out), and, when its inputs are not the catalog's datasets as they are, a short node in
   pipelines/reporting/nodes.py that reads them and calls it.
2. Add one row to DATASET_REPORT_PARTS or INDEX_PARTS, e.g.
   `Part("figure_transfer_curve", nodes.plot_transfer_curve, [TRANSFER_RESULTS, DATASET,
   MODEL], dataset_report.TRANSFER, "transfer_accuracy_by_features_kept.png")`.
3. If it opens a new section, add the section, with its text, to the report's OUTLINE.
Nothing else: no catalog entry, no change to the pipeline or to the writers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from cnn_feature_behavior.pipelines.reporting import nodes
from cnn_feature_behavior.reporting import (
    dataset_report,
    index_report,
    search_and_few_shot,
    transfer_summary,
)
from cnn_feature_behavior.reporting.dataset_report import RunName
from cnn_feature_behavior.reporting.report import (
    Report,
    Section,
    SectionOutline,
    Table,
    format_table,
    markdown_table,
    render_report,
)
from cnn_feature_behavior.reporting.symmetry import SYMMETRY_DECIMALS

INTRO = "(the report's opening paragraph)"
PART_PREFIXES = ("figure_", "table_", "text_")

DATASET = "params:dataset"
MODEL = "params:source_model"
TRANSFER_RESULTS = "transfer_results"
TRANSFER_COMPARISONS = "transfer_comparisons"
TRANSFER = [TRANSFER_RESULTS, TRANSFER_COMPARISONS, DATASET, MODEL]
RETRIEVAL_SCORES = "retrieval_scores"
FEW_SHOT_RESULTS = "few_shot_results"


@dataclass(frozen=True)
class Part:
    """One figure, table, paragraph or list of links of a report, and the node that makes it."""

    name: str
    func: Callable[..., Any]
    inputs: Sequence[str] | Mapping[str, str]
    section: str
    file: str | None = None
    decimals: Mapping[str, int] | None = None
    shown: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    node_name: str = field(default="")

    def __post_init__(self) -> None:
        if not self.name.startswith(PART_PREFIXES):
            raise ValueError(f"report part {self.name!r}: its name must start with {PART_PREFIXES}")
        if not self.node_name:
            object.__setattr__(self, "node_name", self.func.__name__)


DATASET_REPORT_PARTS = (
    Part(
        "text_intro",
        nodes.report_intro,
        ["dataset_properties", "thresholds", DATASET, MODEL],
        INTRO,
    ),
    Part("text_weights", nodes.weights_text, ["weights_provenance"], INTRO),
    Part(
        "table_2_dataset_properties",
        nodes.dataset_properties_row,
        ["dataset_properties"],
        dataset_report.TABLE_2,
        "table_2_dataset_properties",
    ),
    Part(
        "table_3_thresholds",
        nodes.thresholds_row,
        ["thresholds"],
        dataset_report.TABLE_3,
        "table_3_thresholds",
    ),
    Part(
        "figure_1_feature_class_pair",
        nodes.plot_feature_class_pair,
        [
            "dks",
            "embedding_columns",
            "image_index",
            "params:reporting.figure_1",
            "params:dks.bins",
            DATASET,
        ],
        dataset_report.FIGURE_1_SECTION,
        dataset_report.FIGURE_1,
    ),
    Part(
        "table_dks_symmetry",
        nodes.dks_symmetry_of_dataset,
        ["dks_histograms"],
        dataset_report.FIGURE_6_SECTION,
        decimals=SYMMETRY_DECIMALS,
    ),
    Part(
        "figure_6_dks_histograms",
        nodes.plot_dks_histograms,
        ["dks_histograms", "dataset_properties", DATASET, MODEL],
        dataset_report.FIGURE_6_SECTION,
        dataset_report.FIGURE_6,
    ),
    Part(
        "figure_9_class_counts",
        nodes.plot_class_counts,
        ["class_counts", "thresholds", DATASET, MODEL],
        dataset_report.FIGURE_9_SECTION,
        dataset_report.FIGURE_9,
    ),
    Part(
        "figure_davg_curve",
        nodes.plot_davg_curve,
        ["davg_curve", "thresholds", DATASET, MODEL],
        dataset_report.DAVG_SECTION,
        dataset_report.DAVG,
    ),
    Part(
        "figure_10_layer_kept",
        nodes.plot_layer_kept,
        ["layer_kept", DATASET, MODEL],
        dataset_report.FIGURE_10_SECTION,
        dataset_report.FIGURE_10,
    ),
    Part(
        "figure_top_features",
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
        dataset_report.TOP_FEATURES,
    ),
    Part("text_transfer", nodes.transfer_text, TRANSFER, dataset_report.TRANSFER),
    Part(
        "table_transfer",
        nodes.transfer_tables,
        TRANSFER,
        dataset_report.TRANSFER,
        "table_transfer",
        decimals=transfer_summary.REPORT_TABLE_DECIMALS,
        shown=transfer_summary.report_table,
    ),
    Part(
        "table_transfer_comparisons",
        nodes.transfer_comparison_table,
        [TRANSFER_COMPARISONS, DATASET, MODEL],
        dataset_report.TRANSFER,
        "table_transfer_comparisons",
        decimals=transfer_summary.COMPARISON_TABLE_DECIMALS,
        shown=transfer_summary.comparison_table,
    ),
    Part(
        "figure_transfer_by_layer",
        nodes.plot_transfer_by_layer,
        TRANSFER,
        dataset_report.TRANSFER,
        dataset_report.FIGURE_TRANSFER_BY_LAYER,
    ),
    Part(
        "figure_transfer_curve",
        nodes.plot_transfer_curve,
        TRANSFER,
        dataset_report.TRANSFER,
        dataset_report.FIGURE_TRANSFER_CURVE,
    ),
    Part(
        "figure_embedding_maps",
        nodes.plot_embedding_maps,
        ["embedding_maps", DATASET, MODEL],
        dataset_report.TRANSFER,
        dataset_report.FIGURE_EMBEDDING_MAPS,
    ),
    Part(
        "text_search",
        nodes.search_text,
        [RETRIEVAL_SCORES, TRANSFER_RESULTS, DATASET, MODEL],
        dataset_report.SEARCH,
    ),
    Part(
        "table_search",
        nodes.search_table,
        [RETRIEVAL_SCORES, TRANSFER_RESULTS, DATASET, MODEL],
        dataset_report.SEARCH,
        "table_search_and_transfer_per_layer",
        decimals=search_and_few_shot.SEARCH_TABLE_DECIMALS,
    ),
    Part(
        "text_few_shot",
        nodes.few_shot_text,
        [FEW_SHOT_RESULTS, DATASET, MODEL],
        dataset_report.FEW_SHOT,
    ),
    Part(
        "table_few_shot",
        nodes.few_shot_table,
        [FEW_SHOT_RESULTS, DATASET, MODEL],
        dataset_report.FEW_SHOT,
        "table_few_shot",
    ),
    Part(
        "figure_few_shot",
        nodes.plot_few_shot,
        [FEW_SHOT_RESULTS, DATASET, MODEL],
        dataset_report.FEW_SHOT,
        dataset_report.FIGURE_FEW_SHOT,
    ),
)

STUDY_THRESHOLDS = "table_3_thresholds_across_datasets"
STUDY_PROPERTIES = "table_2_dataset_properties_across_datasets"
STUDY_TRANSFER = "table_transfer_across_datasets"
INDEX_PARTS = (
    Part("text_index_intro", nodes.index_intro, [STUDY_THRESHOLDS, MODEL], INTRO),
    Part("text_report_links", nodes.dataset_report_links, [STUDY_THRESHOLDS], index_report.REPORTS),
    Part(
        STUDY_PROPERTIES,
        nodes.study_dataset_properties_table,
        ["all_dataset_properties", "dataset_properties", STUDY_THRESHOLDS, DATASET],
        index_report.TABLE_2,
        "table_2_dataset_properties",
    ),
    Part(
        STUDY_THRESHOLDS,
        nodes.study_thresholds_table,
        ["all_thresholds", "thresholds", DATASET],
        index_report.TABLE_3,
        "table_3_thresholds",
    ),
    Part(
        "table_threshold_fit",
        nodes.threshold_fit_table,
        ["threshold_fit"],
        index_report.THRESHOLD_FIT_SECTION,
        "threshold_fit",
    ),
    Part(
        "figure_threshold_fit",
        nodes.plot_threshold_fit,
        [STUDY_THRESHOLDS, "threshold_fit", MODEL],
        index_report.THRESHOLD_FIT_SECTION,
        index_report.THRESHOLD_FIT,
    ),
    Part(
        "figure_5_layer_summary",
        nodes.plot_layer_summary_across_datasets,
        ["all_dks_layer_summary", "dks_layer_summary", DATASET, MODEL],
        index_report.FIGURE_5_SECTION,
        index_report.FIGURE_5,
    ),
    Part(
        "table_dks_symmetry_by_source_model",
        nodes.dks_symmetry_by_source_model,
        ["all_model_outputs", "dks_histograms", DATASET, MODEL],
        index_report.FIGURE_6_SECTION,
        "table_dks_symmetry",
        decimals=SYMMETRY_DECIMALS,
    ),
    Part(
        "figure_6_across_datasets",
        nodes.plot_dks_histograms_across_datasets,
        ["all_dks_histograms", "dks_histograms", STUDY_PROPERTIES, DATASET, MODEL],
        index_report.FIGURE_6_SECTION,
        index_report.FIGURE_6_ACROSS,
    ),
    Part(
        "figure_8_fc_histograms",
        nodes.plot_fc_histograms_by_overlap,
        [
            "all_dks_histograms",
            "dks_histograms",
            STUDY_PROPERTIES,
            "params:reporting.imagenet_overlap_groups",
            DATASET,
            MODEL,
        ],
        index_report.FIGURE_8_SECTION,
    ),
    Part(
        "figure_5_by_source_model",
        nodes.plot_layer_summary_by_source_model,
        ["all_model_outputs", "dks_layer_summary", DATASET, MODEL],
        index_report.FIGURE_5_BY_MODEL_SECTION,
    ),
    Part(
        "figure_6_by_source_model",
        nodes.plot_dks_histograms_by_source_model,
        [
            "all_model_outputs",
            "dks_histograms",
            "all_dataset_properties",
            "dataset_properties",
            DATASET,
            MODEL,
        ],
        index_report.FIGURE_6_BY_MODEL_SECTION,
    ),
    Part(
        "text_transfer_across_datasets",
        nodes.index_transfer_text,
        ["table_transfer_side_by_side"],
        index_report.TRANSFER,
    ),
    Part(
        "table_transfer_side_by_side",
        nodes.transfer_side_by_side,
        [STUDY_TRANSFER],
        index_report.TRANSFER,
    ),
    Part(
        STUDY_TRANSFER,
        nodes.cross_model_transfer_table,
        ["all_model_outputs", *TRANSFER],
        index_report.TRANSFER,
        "table_transfer_across_datasets",
        decimals=transfer_summary.ACROSS_TABLE_DECIMALS,
    ),
    Part(
        "table_search_and_few_shot_across_datasets",
        nodes.search_and_few_shot_across_datasets,
        ["all_model_outputs", RETRIEVAL_SCORES, FEW_SHOT_RESULTS, DATASET, MODEL],
        index_report.SEARCH_FEW_SHOT,
        "table_search_and_few_shot_across_datasets",
        decimals=search_and_few_shot.ACROSS_DECIMALS,
    ),
    Part(
        "figure_few_shot_across_datasets",
        nodes.plot_few_shot_across_datasets,
        ["all_model_outputs", FEW_SHOT_RESULTS, DATASET, MODEL],
        index_report.SEARCH_FEW_SHOT,
        index_report.FIGURE_FEW_SHOT_ACROSS,
    ),
)

# What each writer returns, in order: the figures, the tables' CSV files and Markdown files
# ({file stem: content}), the report as Markdown and as HTML.
WriterOutputs = tuple[dict[str, Figure], dict[str, pd.DataFrame], dict[str, str], str, str]


def part_named(name: str) -> Part:
    """The row of either report's table with this name."""
    for part in DATASET_REPORT_PARTS + INDEX_PARTS:
        if part.name == name:
            return part
    raise KeyError(f"no report part named {name!r}")


def shown_table(part: Part, table: pd.DataFrame) -> Table:
    """A table part's output as its report shows it and its Markdown file holds it."""
    return format_table(part.shown(table) if part.shown else table, part.decimals)


def writer_inputs(parts: Sequence[Part]) -> list[str]:
    """The datasets a writer takes after its own arguments: every part's, in the rows' order."""
    return [part.name for part in parts]


def write_dataset_report(
    options: Mapping[str, Any], dataset: str, source_model: str, *contents: Any
) -> WriterOutputs:
    """The report of one dataset on one source model from DATASET_REPORT_PARTS' outputs."""
    title = dataset_report.title(RunName(dataset, source_model))
    names = {"dataset": dataset, "source_model": source_model}
    return _write(title, dataset_report.OUTLINE, DATASET_REPORT_PARTS, names, options, contents)


def write_index_report(
    options: Mapping[str, Any], source_model: str, *contents: Any
) -> WriterOutputs:
    """The index across every dataset run on one source model from INDEX_PARTS' outputs."""
    title = index_report.title(source_model)
    names = {"source_model": source_model}
    return _write(title, index_report.OUTLINE, INDEX_PARTS, names, options, contents)


@dataclass
class _Gathered:
    """The parts' outputs sorted into the report's sections and files."""

    intro: list[str] = field(default_factory=list)
    shown: dict[str, dict[str, list]] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    csv: dict[str, pd.DataFrame] = field(default_factory=dict)
    markdown: dict[str, str] = field(default_factory=dict)

    def add(self, section: str, kind: str, item: Any) -> None:
        self.shown.setdefault(section, {}).setdefault(kind, []).append(item)

    def add_figure(self, part: Part, file_name: str, figure: Figure) -> None:
        if file_name in self.figures:
            raise ValueError(
                f"report part {part.name!r}: figure file {file_name!r} is already used"
            )
        self.figures[file_name] = figure
        self.add(part.section, "figures", file_name)


def _write(
    title: str,
    outline: Sequence[SectionOutline],
    parts: Sequence[Part],
    names: Mapping[str, str],
    options: Mapping[str, Any],
    contents: Sequence[Any],
) -> WriterOutputs:
    """The report from its parts' outputs; `names` fill the outline's {dataset} and
    {source_model}."""
    if len(contents) != len(parts):
        raise ValueError(f"report '{title}': {len(contents)} part outputs for {len(parts)} parts")
    gathered = _Gathered()
    for part, content in zip(parts, contents):
        _gather(part, content, gathered)
    titles = [section.title for section in outline]
    unknown = sorted(set(gathered.shown) - set(titles))
    if unknown:
        raise ValueError(f"report '{title}': parts name sections {unknown} outside {titles}")
    report = Report(
        title=title,
        intro=" ".join(gathered.intro),
        sections=tuple(
            _section(entry, gathered.shown.get(entry.title, {}), names) for entry in outline
        ),
    )
    markdown, html = render_report(report, gathered.figures, int(options["html_dpi"]))
    return gathered.figures, gathered.csv, gathered.markdown, markdown, html


def _gather(part: Part, content: Any, gathered: _Gathered) -> None:
    """Put one part's output into its section, and its files among the report's files."""
    if isinstance(content, Figure):
        if part.file is None:
            raise ValueError(
                f"report part {part.name!r}: a figure needs its file name in the table"
            )
        gathered.add_figure(part, part.file, content)
    elif isinstance(content, dict):
        for file_name, figure in content.items():
            gathered.add_figure(part, file_name, figure)
    elif isinstance(content, pd.DataFrame):
        _gather_table(part, content, gathered)
    elif isinstance(content, str):
        if part.section == INTRO:
            gathered.intro.append(content)
        else:
            gathered.add(part.section, "text", content)
    elif isinstance(content, tuple):
        gathered.add(part.section, "links", content)
    else:
        raise TypeError(
            f"report part {part.name!r}: a {type(content).__name__} is no figure, dict of "
            "figures, table, text or links"
        )


def _gather_table(part: Part, table: pd.DataFrame, gathered: _Gathered) -> None:
    """The table as shown in its section (left out when it has no rows) and in its files."""
    formatted = shown_table(part, table)
    if part.file is not None:
        gathered.csv[part.file] = table
        gathered.markdown[part.file] = markdown_table(formatted) + "\n"
    if len(formatted.cells):
        gathered.add(part.section, "tables", formatted)


def _section(entry: SectionOutline, shown: Mapping[str, list], names: Mapping[str, str]) -> Section:
    """A section of the outline with what its parts show."""
    texts = [entry.text.format(**names)]
    texts += shown.get("text", [])
    if entry.when_empty and not shown.get("figures") and not shown.get("tables"):
        texts = [entry.when_empty.format(**names)]
    return Section(
        entry.title,
        text="\n\n".join(text for text in texts if text),
        links=entry.links + tuple(link for links in shown.get("links", []) for link in links),
        tables=tuple(shown.get("tables", [])),
        figures=tuple(shown.get("figures", [])),
    )
