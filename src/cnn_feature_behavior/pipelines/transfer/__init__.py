"""The transfer pipeline: classifiers on layers, the full network, the FNE and DKS-ranked
selections, measured on the test images; 2-D maps of the embedding."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
