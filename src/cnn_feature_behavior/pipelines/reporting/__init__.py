"""The paper's tables and figures, per dataset and across datasets, and the reports."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
