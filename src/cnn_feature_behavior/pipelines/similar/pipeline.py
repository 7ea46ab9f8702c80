"""The similar pipeline (run by name after the study: not part of __default__)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from cnn_feature_behavior.pipelines.similar import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Query images embedded as the study's, their nearest dataset images and a contact sheet."""
    return Pipeline(
        [
            Node(
                nodes.embed_query_images,
                inputs=[
                    "params:similar",
                    "embedding_shards",
                    "feature_manifest",
                    "params:source_models",
                    "params:source_model",
                    "params:crops",
                    "params:feature_extraction",
                ],
                outputs=["query_embedding", "similar_rejects"],
                name="embed_query_images",
            ),
            Node(
                nodes.find_similar_images,
                inputs=[
                    "query_embedding",
                    "embedding",
                    "image_index",
                    "feature_manifest",
                    "params:similar",
                    "params:transfer.fne",
                    "params:raw_dir",
                ],
                outputs="similar_images",
                name="find_similar_images",
            ),
            Node(
                nodes.plot_similar_images,
                inputs=[
                    "similar_images",
                    "params:similar",
                    "params:dataset",
                    "params:source_model",
                ],
                outputs="similar_contact_sheet",
                name="plot_similar_images",
            ),
        ],
        namespace="similar",
        prefix_datasets_with_namespace=False,
    )
