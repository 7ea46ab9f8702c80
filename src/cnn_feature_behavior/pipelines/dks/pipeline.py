"""The dks pipeline."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from cnn_feature_behavior.pipelines.dks import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """DKS, KL / Bhattacharyya and randomised-label DKS in one read of the embedding; summaries."""
    return Pipeline(
        [
            Node(
                nodes.compute_statistics,
                inputs=[
                    "embedding_columns",
                    "image_index",
                    "feature_manifest",
                    "params:dks",
                    "params:calibration",
                    "params:executor",
                    "params:dask",
                ],
                outputs=[
                    "dks",
                    "dks_class_sizes",
                    "kl_divergence",
                    "bhattacharyya_distance",
                    "dks_randomised",
                    "randomised_pair_counts",
                ],
                name="compute_statistics",
                tags=["histogram_distances", "calibration"],
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
