"""The export pipeline: the study's chosen (or a named) classifier as one Keras file, its
features model and its model card."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
