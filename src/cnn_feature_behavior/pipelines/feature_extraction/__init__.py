"""Feature extraction: the image index through a pretrained VGG into the full-network embedding."""

from cnn_feature_behavior.pipelines.feature_extraction.pipeline import create_pipeline

__all__ = ["create_pipeline"]
