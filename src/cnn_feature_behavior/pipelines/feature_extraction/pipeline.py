"""The feature_extraction pipeline."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from cnn_feature_behavior.pipelines.feature_extraction.nodes import (
    collect_extraction_rejects,
    extract_embedding,
)


def create_pipeline(**kwargs) -> Pipeline:
    # Each image is decoded once, by its shard's computation, which records the rejects in the
    # shard: they are known once the embedding is saved. extract_embedding saves `embedding`,
    # then opens `embedding_columns`, a view of the same folder for the nodes that read a few
    # columns or the shards' records (no feature is read): kedro-viz links both to the node, and
    # Kedro runs their readers (collect_extraction_rejects, dks) after the embedding is saved.
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
                    "params:executor",
                    "params:dask",
                ],
                outputs=[
                    "feature_manifest",
                    "embedding",
                    "embedding_columns",
                    "weights_provenance",
                ],
                name="extract_embedding",
            ),
            node(
                collect_extraction_rejects,
                inputs=["embedding_columns", "feature_manifest"],
                outputs="extraction_rejects",
                name="collect_extraction_rejects",
            ),
        ],
        namespace="feature_extraction",
        prefix_datasets_with_namespace=False,
    )
