"""Feature extraction: the image index through a pretrained CNN into the full-network embedding.

The CNN is a VGG, any keras.applications network or a user's .keras model (docs/source_models.md).
"""

from cnn_feature_behavior.pipelines.feature_extraction.pipeline import create_pipeline

__all__ = ["create_pipeline"]
