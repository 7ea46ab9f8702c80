"""Ingestion pipeline: raw files in their official layout -> image index, rejects, properties."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import build_image_index, prepare_raw_dir, summarise_dataset


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                prepare_raw_dir,
                inputs=[
                    "params:raw_dir",
                    "params:dataset",
                    "params:ingestion",
                    "params:dataset_source",
                ],
                outputs="prepared_raw_dir",
                name="prepare_raw_dir",
            ),
            node(
                build_image_index,
                inputs=[
                    "prepared_raw_dir",
                    "params:dataset",
                    "params:ingestion",
                    "params:dataset_source",
                    "params:max_images_per_class",
                    "params:feature_extraction.resize",
                ],
                outputs=["image_index", "ingestion_rejects"],
                name="build_image_index",
            ),
            node(
                summarise_dataset,
                inputs=["image_index", "params:dataset"],
                outputs=["dataset_properties", "dataset_properties_table"],
                name="summarise_dataset",
            ),
        ],
        namespace="ingestion",
        prefix_datasets_with_namespace=False,
    )
