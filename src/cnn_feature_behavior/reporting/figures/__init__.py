"""The paper's figures, drawn from the study's tables: DataFrames in, matplotlib Figures out.

One module per figure family; every public name is re-exported here, so
``from cnn_feature_behavior.reporting import figures; figures.layer_summary_figure(...)`` reads
as before. Every figure has a title, axis labels and a legend, and stays readable for 1,000
classes (Figure 9) and 11 datasets (Figures 5, 8).
"""

from .common import (
    DATASET_COLOURMAP,
    DATASET_COLOURMAP_RANGE,
    KEPT_RANDOMISED_COLOUR,
    KEPT_REAL_COLOUR,
    KEPT_TITLES,
    LAYER_GROUP_LABELS,
    RANDOMISED_COLOUR,
    REAL_COLOUR,
    SIDE_LABELS,
    SIDE_MARKERS,
    dataset_colours,
    dataset_order,
    layer_order,
    line_style_for,
    new_figure,
)
from .dks_distribution import (
    dks_histograms_by_model_figure,
    dks_histograms_figure,
    fc_histograms_by_overlap_figure,
)
from .embedding_maps import MAP_LEGEND_MAX_CLASSES, class_colours, embedding_maps_figure
from .feature_class_pair import (
    InnerOuterDistributions,
    feature_class_pair_figure,
    inner_outer_distributions,
    select_feature_class_pair,
)
from .few_shot import few_shot_across_datasets_figure, few_shot_figure
from .layer_summary import interval_rule, layer_summary_by_model_figure, layer_summary_figure
from .thresholds import class_counts_figure, davg_figure, layer_kept_figure, threshold_fit_figure
from .transfer import (
    CURVE_LINESTYLES,
    SELECTION_COLOURS,
    WHOLE_COLOURS,
    transfer_by_layer_figure,
    transfer_curve_figure,
)

__all__ = [
    "CURVE_LINESTYLES",
    "DATASET_COLOURMAP",
    "DATASET_COLOURMAP_RANGE",
    "KEPT_RANDOMISED_COLOUR",
    "KEPT_REAL_COLOUR",
    "KEPT_TITLES",
    "LAYER_GROUP_LABELS",
    "MAP_LEGEND_MAX_CLASSES",
    "RANDOMISED_COLOUR",
    "REAL_COLOUR",
    "SELECTION_COLOURS",
    "SIDE_LABELS",
    "SIDE_MARKERS",
    "WHOLE_COLOURS",
    "InnerOuterDistributions",
    "class_colours",
    "class_counts_figure",
    "dataset_colours",
    "dataset_order",
    "davg_figure",
    "dks_histograms_by_model_figure",
    "dks_histograms_figure",
    "embedding_maps_figure",
    "fc_histograms_by_overlap_figure",
    "feature_class_pair_figure",
    "few_shot_across_datasets_figure",
    "few_shot_figure",
    "inner_outer_distributions",
    "interval_rule",
    "layer_kept_figure",
    "layer_order",
    "layer_summary_by_model_figure",
    "layer_summary_figure",
    "line_style_for",
    "new_figure",
    "select_feature_class_pair",
    "threshold_fit_figure",
    "transfer_by_layer_figure",
    "transfer_curve_figure",
]
