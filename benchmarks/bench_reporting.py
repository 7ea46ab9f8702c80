"""Reporting at the paper's largest scale: time to draw and render each figure and the report.

ImageNet-sized synthetic inputs (1,000 classes, 12,416 features, 50,000 images; 11 datasets for
the cross-dataset figures) go through the reporting nodes; each figure is rendered as PNG once
for the HTML (html_dpi) and once as the catalog writes it (130 dpi). Prints seconds per step and
the cost of Figure 9 at 1,000 classes relative to 10 classes (one LineCollection per label set,
so it should grow far less than 100x).

    python benchmarks/bench_reporting.py
"""

from __future__ import annotations

import tempfile
import time
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
from cnn_feature_behavior.pipelines.reporting import nodes
from cnn_feature_behavior.reporting.figures import class_counts_figure, inner_outer_distributions
from cnn_feature_behavior.reporting.report import figure_png

LAYERS = [paper_layer_name(name) for name in conv_layer_names("vgg16")] + ["fc6", "fc7"]
WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512, 4096, 4096]
DATASETS = {
    "imagenet": 50,
    "cub200": 59,
    "wood": 63,
    "flowers102": 80,
    "caltech101": 91,
    "mit67": 100,
    "textures": 120,
    "caltech256": 120,
    "stanforddogs": 172,
    "catsdogs": 199,
    "food101": 250,
}
FILE_DPI, HTML_DPI = 130, 90


def class_counts(n_classes: int, rng: np.random.Generator) -> pd.DataFrame:
    grid = np.round(np.arange(0, 1.001, 0.01), 2)
    frames = []
    for side, xs in (("positive", grid), ("negative", -grid[::-1])):
        for labels, scale in (("real", 0.5), ("randomised", 0.15)):
            reach = rng.uniform(0.5, 1.5, n_classes) * scale
            counts = (6000 * np.clip(1 - np.abs(xs)[None] / reach[:, None], 0, None)).astype(int)
            frames.append(
                pd.DataFrame(
                    {
                        "side": side,
                        "x": np.tile(xs, n_classes),
                        "labels": labels,
                        "class": np.repeat(np.arange(n_classes), len(xs)),
                        "count": counts.ravel(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def histograms(dataset: str, rng: np.random.Generator) -> pd.DataFrame:
    edges = np.linspace(-1, 1, 101)
    centres = (edges[:-1] + edges[1:]) / 2
    frames = []
    for group in [*LAYERS, "conv", "fc"]:
        density = np.exp(-((np.abs(centres) - rng.uniform(0.15, 0.3)) ** 2) / 0.005)
        frames.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "group": group,
                    "bin_left": edges[:-1],
                    "bin_right": edges[1:],
                    "percent": 100 * density / density.sum(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


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


def transfer_results(rng: np.random.Generator, repetitions: int = 3) -> pd.DataFrame:
    """A transfer_results table: every layer, the full network, the FNE and both curves."""
    conv = [layer for layer in LAYERS if layer.startswith("conv")]
    configurations = [("layer", layer, None, None, 512) for layer in conv]
    configurations += [("full_network", None, None, None, 4224), ("fne", None, None, None, 4224)]
    for embedding in ("full_network", "fne"):
        for selection in ("dks_count", "random"):
            for fraction in (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0):
                configurations.append(
                    (embedding, None, selection, fraction, round(fraction * 4224))
                )
    rows = [
        {
            "dataset": "imagenet",
            "source_model": "vgg16_imagenet",
            "embedding": embedding,
            "layer": layer,
            "selection": selection,
            "fraction": fraction,
            "n_features": n_features,
            "split_source": "seeded",
            "repetition": repetition,
            "classifier": "logistic_regression",
            "regularisation_c": 0.01,
            "n_train": 25000,
            "n_test": 25000,
            "accuracy": rng.uniform(0.2, 0.8),
            "mean_per_class_accuracy": rng.uniform(0.2, 0.8),
        }
        for embedding, layer, selection, fraction, n_features in configurations
        for repetition in range(repetitions)
    ]
    return pd.DataFrame(rows)


def embedding_maps(rng: np.random.Generator, n_classes: int, n_images: int) -> pd.DataFrame:
    """An embedding_maps table of the four default embeddings."""
    labels = np.arange(n_images) % n_classes
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "dataset": "imagenet",
                    "source_model": "vgg16_imagenet",
                    "embedding": name,
                    "image_id": [f"img_{i}" for i in range(n_images)],
                    "label": labels,
                    "class_name": [f"class_{k}" for k in labels],
                    "x": rng.normal(size=n_images) + labels % 37,
                    "y": rng.normal(size=n_images) + labels // 37,
                }
            )
            for name in ("conv3_3", "conv5_3", "full_network", "fne")
        ],
        ignore_index=True,
    )


def timed(label: str, results: dict, function, *args):
    start = time.perf_counter()
    value = function(*args)
    results[label] = time.perf_counter() - start
    return value


def render(figure) -> None:
    figure_png(figure, HTML_DPI)
    figure_png(figure, FILE_DPI)


def main(workdir: str) -> None:
    rng = np.random.default_rng(0)
    n_classes, n_images = 1000, 50_000
    features = [f"{layer}/n{f}" for layer, width in zip(LAYERS, WIDTHS) for f in range(width)]
    classes = [f"class {k}" for k in range(n_classes)]
    dks = pd.DataFrame(
        rng.uniform(-0.5, 0.5, (len(features), n_classes)).astype(np.float32),
        columns=classes,
        index=pd.Index(features, name="feature"),
    )
    dks.insert(0, "layer", [name.split("/")[0] for name in features])
    labels = np.repeat(np.arange(n_classes), n_images // n_classes)
    image_ids = [f"img_{i:05d}" for i in range(n_images)]
    image_index = pd.DataFrame(
        {
            "image_id": image_ids,
            "path": [f"{i}.jpg" for i in image_ids],
            "label": labels,
            "class_name": [classes[k] for k in labels],
        }
    )
    # A slice of the embedding (256 of its 12,416 columns) in 10 shards, to time Figure 1's
    # one-column read against loading the whole table.
    stored = features[4992:5248]
    chosen = stored[8]
    block = rng.gamma(2.0, size=(n_images, len(stored))).astype(np.float32)
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
    counts = class_counts(n_classes, rng)
    thresholds = pd.DataFrame(
        [
            {
                "dataset": "imagenet",
                "source_model": "vgg16_imagenet",
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
            for name, m in DATASETS.items()
        ]
    )
    summaries = {name: layer_summary(name, m, rng) for name, m in DATASETS.items()}
    all_histograms = {name: histograms(name, rng) for name in DATASETS}
    study_thresholds = pd.DataFrame(
        {"dataset": list(DATASETS), "mean_images_per_class": list(DATASETS.values())}
    )
    study_thresholds["t_plus"] = 0.4 - 0.06 * np.log(study_thresholds["mean_images_per_class"])
    study_thresholds["t_minus"] = -0.8 * study_thresholds["t_plus"]
    fit = pd.DataFrame(
        [
            {"threshold": t, "a": 0.4 * s, "b": -0.06 * s, "r_squared": 0.83, "n_datasets": 11}
            for t, s in (("t_plus", 1), ("t_minus", -0.8))
        ]
    )

    process = psutil.Process()
    times: dict[str, float] = {}
    total_start = time.perf_counter()
    figures_made = {
        "figure 1": timed(
            "figure 1 (draw)",
            times,
            nodes.plot_feature_class_pair,
            dks,
            embedding,
            image_index,
            {"feature": None, "class_name": None},
            100,
            "imagenet",
        ),
        "figure 6": timed(
            "figure 6, 11 datasets (draw)",
            times,
            nodes.plot_dks_histograms_across_datasets,
            {name: (lambda t=t: t) for name, t in all_histograms.items()},
            all_histograms["imagenet"],
            properties,
            "imagenet",
            "vgg16_imagenet",
        ),
        "figure 9": timed(
            "figure 9, 1,000 classes (draw)",
            times,
            nodes.plot_class_counts,
            counts,
            thresholds,
            "imagenet",
            "vgg16_imagenet",
        ),
        "davg": timed(
            "davg (draw)",
            times,
            nodes.plot_davg_curve,
            davg,
            thresholds,
            "imagenet",
            "vgg16_imagenet",
        ),
        "figure 10": timed(
            "figure 10 (draw)", times, nodes.plot_layer_kept, kept, "imagenet", "vgg16_imagenet"
        ),
        "figure 5": timed(
            "figure 5, 11 datasets (draw)",
            times,
            nodes.plot_layer_summary_across_datasets,
            {name: (lambda t=t: t) for name, t in summaries.items()},
            summaries["imagenet"],
            "imagenet",
            "vgg16_imagenet",
        ),
        "figure 8": timed(
            "figure 8, 11 datasets (draw)",
            times,
            nodes.plot_fc_histograms_by_overlap,
            {name: (lambda t=t: t) for name, t in all_histograms.items()},
            all_histograms["imagenet"],
            properties,
            {
                "(a)": ["imagenet", "stanforddogs", "catsdogs", "caltech101", "caltech256"],
                "(b)": ["cub200", "flowers102", "food101"],
                "(c)": ["wood", "mit67", "textures"],
            },
            "imagenet",
            "vgg16_imagenet",
        ),
        "threshold fit": timed(
            "threshold fit (draw)",
            times,
            nodes.plot_threshold_fit,
            study_thresholds,
            fit,
            "vgg16_imagenet",
        ),
    }
    transfer = transfer_results(rng)
    figures_made["transfer per layer"] = timed(
        "transfer accuracy per layer (draw)",
        times,
        nodes.plot_transfer_by_layer,
        transfer,
        "imagenet",
        "vgg16_imagenet",
    )
    figures_made["transfer curve"] = timed(
        "transfer accuracy against features kept (draw)",
        times,
        nodes.plot_transfer_curve,
        transfer,
        "imagenet",
        "vgg16_imagenet",
    )
    figures_made["embedding maps"] = timed(
        "embedding maps, 4 x 2,000 points, 1,000 classes (draw)",
        times,
        nodes.plot_embedding_maps,
        embedding_maps(rng, 1000, 2000),
        "imagenet",
        "vgg16_imagenet",
    )
    for name, figure in figures_made.items():
        timed(f"{name} (render HTML + file PNG)", times, render, figure)
    report = timed(
        "report assembly (Markdown + HTML, 8 figures)",
        times,
        lambda: nodes.write_dataset_report(
            properties.iloc[[0]],
            thresholds,
            all_histograms["imagenet"],
            transfer,
            {"html_dpi": HTML_DPI},
            "imagenet",
            "vgg16_imagenet",
            figure_1=figures_made["figure 1"],
            figure_6=figures_made["figure 6"],
            figure_9=figures_made["figure 9"],
            davg=figures_made["davg"],
            figure_10=figures_made["figure 10"],
            top_features={},
            transfer_by_layer=figures_made["transfer per layer"],
            transfer_curve=figures_made["transfer curve"],
            embedding_maps=figures_made["embedding maps"],
        ),
    )
    total = time.perf_counter() - total_start

    start = time.perf_counter()
    embedding.load_columns([chosen])
    one_column = time.perf_counter() - start
    start = time.perf_counter()
    embedding.load()
    all_columns = time.perf_counter() - start

    small = class_counts(10, rng)
    start = time.perf_counter()
    render(class_counts_figure(small, t_plus=0.15, t_minus=-0.12, dataset="d", source_model="m"))
    ten = time.perf_counter() - start
    start = time.perf_counter()
    render(class_counts_figure(counts, t_plus=0.15, t_minus=-0.12, dataset="d", source_model="m"))
    thousand = time.perf_counter() - start

    width = max(len(label) for label in times)
    for label, seconds in times.items():
        print(f"{label:<{width}}  {seconds:7.2f} s")
    print(f"{'total':<{width}}  {total:7.2f} s")
    print(
        f"report.html size: {len(report[2]) / 1e6:.1f} MB; "
        f"peak RSS {process.memory_info().rss / 2**30:.2f} GiB"
    )
    print(
        f"Figure 1's column of 50,000 images: {one_column:.3f} s, against {all_columns:.2f} s "
        f"for all {len(stored)} stored columns ({all_columns / one_column:.0f}x; the real "
        f"embedding has {len(features):,})"
    )
    print(
        f"Figure 9 draw + render: 10 classes {ten:.2f} s, 1,000 classes {thousand:.2f} s, "
        f"ratio {thousand / ten:.1f}x for 100x the lines"
    )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as workdir:
        main(workdir)
