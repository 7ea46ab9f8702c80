"""The embeddings compared in transfer: standardisation with fitted statistics (of the values, or
of their signed square roots: what the large-scale classifier, discriminant.py, sees) and the
three-valued full-network embedding (FNE, Garcia-Gasulla et al. 2017/2018)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The FNE paper's public code: standardised values above 0.15 become 1, below -0.25 become -1.
FNE_POSITIVE = 0.15
FNE_NEGATIVE = -0.25


# Rows per block of the float64 arithmetic (about 50 MB of a 12,416-feature matrix).
ROW_BLOCK = 512


def _row_blocks(values: np.ndarray, rows: np.ndarray | None = None, root: bool = False):
    """Blocks of ROW_BLOCK rows of `values` (of its `rows`, in their order, where given), as
    signed square roots with `root`."""
    n_rows = len(values) if rows is None else len(rows)
    for start in range(0, n_rows, ROW_BLOCK):
        if rows is None:
            block = values[start : start + ROW_BLOCK]
        else:
            block = values[rows[start : start + ROW_BLOCK]]
        yield signed_root(block) if root else block


def signed_root(values: np.ndarray) -> np.ndarray:
    """sign(x) sqrt(|x|) (of ReLU features: their square roots), in the values' float type."""
    values = np.asarray(values)
    return np.sign(values) * np.sqrt(np.abs(values))


@dataclass(frozen=True)
class Standardisation:
    """Per-feature mean and scale, fitted on some images (the training split) and applied to any;
    with `root`, of the values' signed square roots (signed_root), applied to those."""

    mean: np.ndarray
    scale: np.ndarray
    root: bool = False

    @classmethod
    def fit(
        cls, values: np.ndarray, rows: np.ndarray | None = None, root: bool = False
    ) -> Standardisation:
        """Mean and standard deviation of each column (of its signed square roots with `root`)
        over `rows` (default: every row); a constant column gets scale 1 (maps to 0)."""
        values = np.asarray(values)
        n_rows = len(values) if rows is None else len(rows)
        if values.ndim != 2 or n_rows == 0:
            raise ValueError(f"standardisation needs a non-empty 2-D matrix, got {values.shape}")
        # float64 sums over blocks of rows: no float64 copy of the whole matrix.
        mean = np.zeros(values.shape[1])
        for block in _row_blocks(values, rows, root):
            mean += block.sum(axis=0, dtype=np.float64)
        mean /= n_rows
        square = np.zeros(values.shape[1])
        for block in _row_blocks(values, rows, root):
            square += np.square(block.astype(np.float64) - mean).sum(axis=0)
        scale = np.sqrt(square / n_rows)
        scale[scale == 0] = 1.0
        return cls(mean=mean, scale=scale, root=root)

    def apply(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(values - mean) / scale as float32 (of their signed square roots with `root`), of
        `rows` in their order (default: every row)."""
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != len(self.mean):
            raise ValueError(
                f"matrix {values.shape} does not have the {len(self.mean)} fitted features"
            )
        out = np.empty((len(values) if rows is None else len(rows), values.shape[1]), np.float32)
        for start, block in zip(
            range(0, len(out), ROW_BLOCK), _row_blocks(values, rows, self.root)
        ):
            out[start : start + ROW_BLOCK] = (block - self.mean) / self.scale
        return out


def standardise(values: np.ndarray, fitted_on: np.ndarray | None = None) -> np.ndarray:
    """`values` standardised with the statistics of `fitted_on` (default: of `values` itself)."""
    return Standardisation.fit(values if fitted_on is None else fitted_on).apply(values)


def fne_values(
    standardised: np.ndarray, positive: float = FNE_POSITIVE, negative: float = FNE_NEGATIVE
) -> np.ndarray:
    """Three values of standardised features: > positive is 1, < negative is -1, else 0 (float32)."""
    if not negative <= positive:
        raise ValueError(f"FNE thresholds: negative {negative} must not exceed positive {positive}")
    standardised = np.asarray(standardised)
    out = np.zeros(standardised.shape, dtype=np.float32)
    out[standardised > positive] = 1.0
    out[standardised < negative] = -1.0
    return out
