"""Transfer evaluation: which layers and features to transfer, measured by a classifier."""
