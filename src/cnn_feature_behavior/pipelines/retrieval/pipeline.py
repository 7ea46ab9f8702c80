"""The retrieval pipeline."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from cnn_feature_behavior.pipelines.retrieval import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Retrieval score of every embedding, leave-one-out over the dataset."""
    return Pipeline(
        [
            Node(
                nodes.score_retrieval,
                inputs=[
                    "embedding",
                    "image_index",
                    "feature_manifest",
                    "params:retrieval",
                    "params:transfer.fne",
                    "params:dataset",
                    "params:source_model",
                ],
                outputs="retrieval_scores",
                name="score_retrieval",
            ),
        ],
        namespace="retrieval",
        prefix_datasets_with_namespace=False,
    )
