"""The predict pipeline: every image under a folder classified with the exported model."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
