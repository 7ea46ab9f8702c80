"""The report of one dataset on one source model: its outline (sections in the paper's order and
their prose), the prose drawn from the run's tables, and its figures' file names (relative to
report.md, beside it). What each section shows is listed in `pipelines.reporting.parts`."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cnn_feature_behavior.reporting import transfer_summary
from cnn_feature_behavior.reporting.report import SectionOutline

FIGURE_1 = "figure_1_feature_class_pair.png"
FIGURE_6 = "figure_6_dks_histograms.png"
FIGURE_9 = "figure_9_class_counts.png"
DAVG = "davg_curve.png"
FIGURE_10 = "figure_10_layer_kept.png"
FIGURE_TRANSFER_BY_LAYER = "transfer_accuracy_per_layer.png"
FIGURE_TRANSFER_CURVE = "transfer_accuracy_by_features_kept.png"
FIGURE_EMBEDDING_MAPS = "embedding_maps.png"
FIGURE_FEW_SHOT = "few_shot_accuracy_per_layer.png"

FIGURE_6_TEXT = (
    "Share of (feature, class) pairs per DKS bin, for the features of spatial layers (feature "
    "maps averaged over space: VGG's conv layers, a ResNet's or an EfficientNet's block outputs) "
    "and of head layers (1-D: VGG's fc6 and fc7, a pooled top, the logits). The paper finds the "
    "DKS of convolutional (spatial) features more symmetric around 0 than that of fully "
    "connected (head) ones. The table gives, per layer kind, the mean DKS, its skewness (0: "
    "symmetric; > 0: a longer tail towards positive DKS) and the share of pairs above 0, "
    "computed from the histograms drawn."
)

TABLE_2 = "Table 2: dataset properties"
TABLE_3 = "Table 3: thresholds"
FIGURE_1_SECTION = "Figure 1: one (feature, class) pair"
FIGURE_6_SECTION = "Figure 6: DKS distribution of spatial and head features"
FIGURE_9_SECTION = "Figure 9: features per class beyond x"
DAVG_SECTION = "Threshold selection: davg(x)"
FIGURE_10_SECTION = "Figure 10: pairs kept per layer"
TOP_FEATURES = "Figures 2, 3, 4 and 7: top features per class"
TRANSFER = "Transfer"
SEARCH = "Search: retrieval per layer"
FEW_SHOT = "Few-shot per layer"
ACROSS_DATASETS = "Across datasets"

# The sections in the paper's order, then transfer and a link to the index across datasets.
OUTLINE = (
    SectionOutline(TABLE_2, text="The images and classes of {dataset} the study used."),
    SectionOutline(
        TABLE_3,
        text="t+ and t- maximise davg, the mean number of features per class beyond "
        "x with real labels minus that with randomised labels (Equation 4): a (feature, "
        "class) pair beyond them carries information about its class, the pairs between are "
        "mostly noise. features_relevant_plus (_minus) counts the features beyond t+ (t-) for "
        "at least one class, the features worth keeping.",
    ),
    SectionOutline(
        FIGURE_1_SECTION,
        text="Inner-class and outer-class histograms of one feature, and their EDFs; "
        "the red segment is the largest gap, the signed DKS.",
    ),
    SectionOutline(FIGURE_6_SECTION, text=FIGURE_6_TEXT),
    SectionOutline(
        FIGURE_9_SECTION,
        text="One line per class: features with DKS above x (left) or below x "
        "(right); real labels in black, randomised labels in red, thresholds "
        "dashed.",
    ),
    SectionOutline(DAVG_SECTION, text="davg(x) on each side of 0; t+ and t- are where it peaks."),
    SectionOutline(
        FIGURE_10_SECTION,
        text="Share of each layer's (feature, class) pairs beyond the thresholds, "
        "real labels against randomised labels.",
    ),
    SectionOutline(
        TOP_FEATURES,
        text="For each class shown (reporting.feature_visualisation), the features with the "
        "highest DKS (their presence marks the class) and the lowest (their absence does), each "
        "as the 9 images of the reference pool that activate it most, cropped to the part of its "
        "receptive field inside the image: what the feature responds to. Head features (fully "
        "connected layers, a pooled top, the logits) have no spatial map and show whole images; "
        "an output logit is named by its ImageNet class. The pool is the dataset's own images "
        "unless pool_dir names others (the paper used ImageNet's validation images).",
    ),
    SectionOutline(TRANSFER),
    SectionOutline(
        SEARCH,
        text="Each layer, the full network and the FNE as an image search: every image a query "
        "against all the others, an image of its class relevant, ranked by the cosine of the "
        "features standardised over the dataset (the FNE three-valued). mAP@10 with AP "
        "normalised by min(10, relevant images), its 95% t interval over the queries, beside "
        "the Transfer section's accuracy (a linear classifier on the training images); "
        "tied_with_best_map: the paired interval of the per-query difference with the best "
        "holds 0. `kedro run --pipelines similar --params similar.images=<folder>` searches "
        "the dataset for your own images.",
    ),
    SectionOutline(
        FEW_SHOT,
        text="Test accuracy from k training images per class, drawn from the transfer splits' "
        "training images in seeded episodes (the same episodes for every embedding), "
        "standardised on those k images per class: nearest class mean (Euclidean) and a "
        "multinomial logistic regression at a fixed C. Mean over the episodes [95% t "
        "interval]; * marks the best embedding of its column and those tied with it (paired "
        "interval of the per-episode difference holds 0).",
    ),
    SectionOutline(
        ACROSS_DATASETS,
        text="Every dataset run so far on {source_model}: Figures 5 and 8, Tables 2 "
        "and 3, the threshold fit.",
        links=(("Study index", "../index.html"),),
    ),
)


@dataclass(frozen=True)
class RunName:
    """Which run a report or figure is about."""

    dataset: str
    source_model: str


def one_row(table: pd.DataFrame, name: str) -> pd.Series:
    """The single row of a one-run table (Table 2's or Table 3's row of this dataset)."""
    if len(table) != 1:
        raise ValueError(f"{name}: expected exactly one row, got {len(table)}")
    return table.iloc[0]


def title(run: RunName) -> str:
    return f"{run.dataset} on {run.source_model}"


def intro(dataset_properties: pd.DataFrame, thresholds: pd.DataFrame, run: RunName) -> str:
    """What the report is about, with the dataset's size and its thresholds."""
    properties = one_row(dataset_properties, "dataset_properties")
    row = one_row(thresholds, "thresholds")
    return (
        f"What each feature of {run.source_model} says about each of the "
        f"{int(properties['n_classes'])} classes of {run.dataset} "
        f"({int(properties['n_images'])} images), after Garcia-Gasulla et al. (JAIR 2018). "
        f"Thresholds: t+ = {row['t_plus']:+.3f}, t- = {row['t_minus']:+.3f}."
    )


def weights_sentence(weights_provenance: pd.DataFrame) -> str:
    """Which weights the source model ran with, and whether they are its published ones (the
    extraction's `weights_provenance` row, extraction/source_models/provenance.py)."""
    row = one_row(weights_provenance, "weights_provenance")
    if row["published"] or row["weights_source"] == "keras_file":
        return f"Weights ({row['path']}): {row['provenance']}."
    return (
        f"Weights ({row['path']}, sha256 {row['sha256'][:16]}...): {row['provenance']}. Every "
        f"number in this report describes this file's weights, not {row['source_model']}'s "
        "published ones."
    )


def transfer_text(transfer_results: pd.DataFrame, transfer_comparisons: pd.DataFrame) -> str:
    """The verdict, then how the transfer was evaluated."""
    summary = transfer_summary.summarise(transfer_results, transfer_comparisons)
    n_train = ", ".join(f"{value:,.0f}" for value in sorted(set(summary["n_train"])))
    n_test = ", ".join(f"{value:,.0f}" for value in sorted(set(summary["n_test"])))
    draws = int(summary["draws"].max())
    return (
        f"{transfer_summary.transfer_verdict(transfer_results, transfer_comparisons)}\n\n"
        f"Split: {transfer_summary.split_description(summary)}; {n_train} training and "
        f"{n_test} test images. One classifier fits every row "
        f"({transfer_summary.solver_description(summary)}), on each embedding standardised "
        "with training statistics. Its regularisation is chosen by stratified k-fold "
        "cross-validation on the training images (mean held-out loss; each fold's own "
        "standardisation, FNE, DKS, t+ / t- and rankings); the best layer and the best "
        "selection are the rows of the best cross-validated mean per-class accuracy, then "
        "measured once on the test images. Baselines at every size: ANOVA-F (the standard "
        f"filter) and random selections ({draws} draws, their mean). Intervals: 95% percentile "
        "bootstrap over repetitions, test images within each class and random draws; a "
        "difference is called only where its interval excludes zero (transfer_comparisons). "
        "Regularisation: regularisation_c is scikit-learn's C, ridge_alpha ridge's own "
        "strength, shrinkage the discriminant's; c_at_grid_edge counts the repetitions whose "
        "regularisation stayed at the edge of the searched grid, widened as far as allowed: a "
        "better value may lie beyond, and that row's accuracy may be an underestimate.\n\n"
        "The figures: each layer's mean per-class accuracy alone, with the full network's, the "
        "FNE's and the best selection's across; mean per-class accuracy against the share of "
        "features kept, DKS-ranked against ANOVA-F and random selections of the same size; and "
        "2-D maps (t-SNE after PCA of a stratified subsample of every image), one point per "
        "image coloured by class: classes in separate clusters are told apart by the embedding "
        "without any classifier."
    )
