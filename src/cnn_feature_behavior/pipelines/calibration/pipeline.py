"""The calibration pipeline."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from cnn_feature_behavior.pipelines.calibration import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """davg curve, t+ / t-, kept pairs per layer, cross-dataset fit (randomised DKS: dks pipeline)."""
    return Pipeline(
        [
            Node(
                nodes.count_real_pairs,
                inputs=["dks", "feature_manifest"],
                outputs="real_pair_counts",
                name="count_real_pairs",
            ),
            Node(
                nodes.compute_davg_curve,
                inputs=["real_pair_counts", "randomised_pair_counts", "dks_class_sizes"],
                outputs="davg_curve",
                name="compute_davg_curve",
            ),
            Node(
                nodes.select_thresholds,
                inputs=[
                    "davg_curve",
                    "dks",
                    "feature_manifest",
                    "dks_class_sizes",
                    "params:dataset",
                    "params:source_model",
                    "params:calibration",
                ],
                outputs="thresholds",
                name="select_thresholds",
            ),
            Node(
                nodes.compute_layer_kept,
                inputs=[
                    "real_pair_counts",
                    "randomised_pair_counts",
                    "thresholds",
                    "feature_manifest",
                ],
                outputs="layer_kept",
                name="compute_layer_kept",
            ),
            Node(
                nodes.count_class_features,
                inputs=["dks", "dks_randomised", "feature_manifest", "params:calibration"],
                outputs="class_counts",
                name="count_class_features",
            ),
            Node(
                nodes.fit_threshold_model,
                inputs=["all_thresholds", "thresholds"],
                outputs="threshold_fit",
                name="fit_threshold_model",
            ),
        ],
        namespace="calibration",
        prefix_datasets_with_namespace=False,
    )
