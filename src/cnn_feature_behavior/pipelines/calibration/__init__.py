"""The calibration pipeline: noise level of DKS from randomised labels, thresholds t+ and t-."""

from cnn_feature_behavior.pipelines.calibration.pipeline import create_pipeline

__all__ = ["create_pipeline"]
