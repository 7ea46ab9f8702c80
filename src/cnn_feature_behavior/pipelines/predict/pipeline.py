"""The predict pipeline (`kedro run --pipelines predict --params predict.images=<folder>`)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from cnn_feature_behavior.pipelines.predict import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Classify every image under a folder with the exported classifier."""
    return Pipeline(
        [
            Node(
                nodes.predict_images,
                inputs=[
                    "exported_classifier",
                    "params:predict",
                    "params:feature_extraction",
                    "params:ingestion.image_limits",
                ],
                outputs=["predictions", "prediction_rejects"],
                name="predict_images",
            ),
        ],
        namespace="predict",
        prefix_datasets_with_namespace=False,
    )
