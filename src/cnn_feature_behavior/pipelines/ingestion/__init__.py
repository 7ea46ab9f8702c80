"""Ingestion: index a dataset's images in their official layout (see docs/datasets.md)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
