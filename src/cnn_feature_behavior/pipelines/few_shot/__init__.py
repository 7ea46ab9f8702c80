"""The few_shot pipeline: k-shot accuracy of each layer, the full network and the FNE."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
