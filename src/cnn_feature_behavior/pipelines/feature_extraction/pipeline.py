"""The feature_extraction pipeline."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from cnn_feature_behavior.pipelines.feature_extraction.nodes import (
    collect_extraction_rejects,
    extract_embedding,
)


def create_pipeline(**kwargs) -> Pipeline:
    # Each image is decoded once, by its shard's computation, which records the rejects in the
    # shard: they are known once the embedding is saved. collect_extraction_rejects reads them
    # through a view of the same folder (no feature is read); it takes feature_manifest, an
    # output of extract_embedding, so Kedro runs it after that node, embedding saved.
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
                outputs=["feature_manifest", "embedding", "weights_provenance"],
                name="extract_embedding",
            ),
            node(
                collect_extraction_rejects,
                inputs=["embedding_shards", "feature_manifest"],
                outputs="extraction_rejects",
                name="collect_extraction_rejects",
            ),
        ],
        namespace="feature_extraction",
        prefix_datasets_with_namespace=False,
    )
