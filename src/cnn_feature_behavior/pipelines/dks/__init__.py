"""The dks pipeline: signed Kolmogorov-Smirnov statistic of every (feature, class) pair."""

from cnn_feature_behavior.pipelines.dks.pipeline import create_pipeline

__all__ = ["create_pipeline"]
