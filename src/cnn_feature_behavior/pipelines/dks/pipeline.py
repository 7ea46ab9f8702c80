"""The dks pipeline."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from cnn_feature_behavior.pipelines.dks import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """DKS of every (feature, class), KL / Bhattacharyya on the same histograms, layer summaries."""
    return Pipeline(
        [
            Node(
                nodes.compute_dks,
                inputs=["embedding", "image_index", "feature_manifest", "params:dks"],
                outputs=["dks", "dks_class_sizes"],
                name="compute_dks",
            ),
            Node(
                nodes.compute_histogram_distances,
                inputs=["embedding", "image_index", "feature_manifest", "params:dks"],
                outputs=["kl_divergence", "bhattacharyya_distance"],
                name="compute_histogram_distances",
                tags=["histogram_distances"],
            ),
            Node(
                nodes.summarise_dks_by_layer,
                inputs=[
                    "dks",
                    "feature_manifest",
                    "dks_class_sizes",
                    "params:dataset",
                    "params:dks.layer_summary.interval",
                ],
                outputs="dks_layer_summary",
                name="summarise_dks_by_layer",
            ),
            Node(
                nodes.histogram_dks_by_layer,
                inputs=["dks", "feature_manifest", "params:dataset"],
                outputs="dks_histograms",
                name="histogram_dks_by_layer",
            ),
        ],
        namespace="dks",
        prefix_datasets_with_namespace=False,
    )
