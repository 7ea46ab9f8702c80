"""The export pipeline (after the study: `kedro run --pipelines export`)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from cnn_feature_behavior.pipelines.export import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Refit the chosen classifier, write it as Keras files, check them, write the model card."""
    return Pipeline(
        [
            Node(
                nodes.refit_classifier,
                inputs=[
                    "embedding",
                    "image_index",
                    "feature_manifest",
                    "transfer_splits",
                    "transfer_results",
                    "params:export",
                    "params:transfer",
                    "params:dks",
                    "params:calibration",
                ],
                outputs="export_fit",
                name="refit_classifier",
            ),
            Node(
                nodes.build_models,
                inputs=[
                    "export_fit",
                    "embedding_columns",
                    "feature_manifest",
                    "params:source_models",
                    "params:source_model",
                    "params:dataset",
                ],
                outputs=["exported_classifier", "exported_features"],
                name="build_models",
            ),
            Node(
                nodes.describe_export,
                inputs=[
                    "exported_classifier",
                    "export_fit",
                    "image_index",
                    "embedding_columns",
                    "params:export",
                    "params:feature_extraction",
                ],
                outputs=["model_card", "model_card_markdown"],
                name="describe_export",
            ),
        ],
        namespace="export",
        prefix_datasets_with_namespace=False,
    )
