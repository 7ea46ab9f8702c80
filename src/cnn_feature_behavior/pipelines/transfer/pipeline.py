"""The transfer pipeline."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from cnn_feature_behavior.pipelines.transfer import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Transfer evaluation of the embeddings and their 2-D maps."""
    return Pipeline(
        [
            Node(
                nodes.split_images,
                inputs=["image_index", "params:transfer.split"],
                outputs="transfer_splits",
                name="split_images",
            ),
            Node(
                nodes.evaluate_transfer,
                inputs=[
                    "embedding",
                    "image_index",
                    "feature_manifest",
                    "transfer_splits",
                    "params:transfer",
                    "params:dks",
                    "params:calibration",
                    "params:dataset",
                    "params:source_model",
                ],
                outputs=["transfer_results", "transfer_comparisons"],
                name="evaluate_transfer",
            ),
            Node(
                nodes.compute_embedding_maps,
                inputs=[
                    "embedding",
                    "image_index",
                    "feature_manifest",
                    "params:transfer.maps",
                    "params:transfer.fne",
                    "params:source_models",
                    "params:source_model",
                    "params:dataset",
                ],
                outputs="embedding_maps",
                name="compute_embedding_maps",
            ),
        ],
        namespace="transfer",
        prefix_datasets_with_namespace=False,
    )
