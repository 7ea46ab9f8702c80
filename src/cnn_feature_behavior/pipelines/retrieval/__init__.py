"""The retrieval pipeline: mAP@10 of each layer, the full network and the FNE, leave-one-out."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
