"""The similar pipeline: the dataset's images most similar to query images, in one embedding."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
