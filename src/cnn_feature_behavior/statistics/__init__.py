"""Statistics core: DKS, histogram distances and the noise calibration (numpy only)."""
