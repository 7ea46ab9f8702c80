"""The feature_extraction pipeline."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from cnn_feature_behavior.pipelines.feature_extraction.nodes import extract_embedding


def create_pipeline(**kwargs) -> Pipeline:
    # The embedding is saved last: the manifest and rejects are on disk while its shards stream.
    return Pipeline(
        [
            node(
                extract_embedding,
                inputs=[
                    "image_index",
                    "params:raw_dir",
                    "params:source_models",
                    "params:source_model",
                    "params:crops",
                    "params:feature_extraction",
                ],
                outputs=["feature_manifest", "extraction_rejects", "embedding"],
                name="extract_embedding",
            )
        ],
        namespace="feature_extraction",
        prefix_datasets_with_namespace=False,
    )
