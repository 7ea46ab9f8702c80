"""The few_shot pipeline."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from cnn_feature_behavior.pipelines.few_shot import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """k-shot accuracy of every embedding over seeded episodes of the transfer splits."""
    return Pipeline(
        [
            Node(
                nodes.score_few_shot,
                inputs=[
                    "embedding",
                    "image_index",
                    "feature_manifest",
                    "transfer_splits",
                    "params:few_shot",
                    "params:transfer.fne",
                    "params:dataset",
                    "params:source_model",
                ],
                outputs="few_shot_results",
                name="score_few_shot",
            ),
        ],
        namespace="few_shot",
        prefix_datasets_with_namespace=False,
    )
