"""The k most similar images by cosine similarity: blocked float32 products, a running top-k.

Shared by the retrieval score (every image a query against all the others: `leave_one_out`)
and the similar-images search (new images against the dataset: `most_similar`). Continuous rows
are L2-normalised (`unit_rows`), so a float32 product of two rows is their cosine. Three-valued
rows (the FNE) are multiplied as they are, which is exact (integers), and each product divided
by the square root of the two squared norms in float64 before rounding to float32: two pairs of
equal cosine (1 / sqrt(2 x 2) and 2 / sqrt(4 x 4)) get the same float32 similarity whatever the
blocking, so the tie rule below decides their order (with unit rows, float32 rounding ordered
them by block size: 0.0014 of mAP@5 on a test set). A row of zeros (an image whose FNE is all
0) has cosine 0 with every image.

Ties: among equal similarities the image earlier in the database ranks first (the order of a
stable sort by decreasing similarity), on the float32 similarities.

Written by hand, not with a nearest-neighbour library: leave-one-out over a dataset is
symmetric, so each pair's product is computed once (the upper triangle of blocks, half the
floating-point work of a library's search of the dataset against itself) and each block updates
the top-k of its rows and of its columns. The top-k is a compiled scan (numba, no GIL) that keeps
each query's k best in order and touches an element only to compare it with the k-th best:
numpy's argpartition of each block cost more than the products (1.6 s a 1,024 x 50,000 block
against 0.7 s for its product, on the reference machine). Measured against faiss's exact
inner-product search: benchmarks/bench_retrieval.py, benchmarks/README.md.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

# Queries (and database images) per block: a 2,048-square float32 block is 16 MiB.
BLOCK = 2048


def unit_rows(values: np.ndarray) -> np.ndarray:
    """Each row divided by its Euclidean norm, as float32; a row of zeros stays zeros."""
    values = np.asarray(values, np.float32)
    norms = np.sqrt(squared_norms(values))
    out = np.zeros(values.shape, np.float32)
    nonzero = norms > 0
    out[nonzero] = values[nonzero] / norms[nonzero, None].astype(np.float32)
    return out


def squared_norms(values: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", values, values, dtype=np.float64)


@dataclass(frozen=True)
class Cosines:
    """Rows whose block products give cosines (module docstring): unit rows, or three-valued
    rows with their squared norms."""

    rows: np.ndarray  # float32, C order
    squared_norms: np.ndarray | None = None  # float64, three-valued rows only

    @classmethod
    def of(cls, values: np.ndarray) -> Cosines:
        """Three-valued rows (every value -1, 0 or 1) kept exact; any other rows normalised."""
        values = np.asarray(values, np.float32)
        if values.size and np.isin(values, (-1.0, 0.0, 1.0)).all():
            return cls(np.ascontiguousarray(values), squared_norms(values))
        return cls(np.ascontiguousarray(unit_rows(values)))

    def __len__(self) -> int:
        return len(self.rows)

    def block(self, start: int, other: Cosines, other_start: int, size: int, out: np.ndarray):
        """The cosines of rows [start, start + size) against other's [other_start, + size),
        written into (a corner of) `out`."""
        rows = self.rows[start : start + size]
        columns = other.rows[other_start : other_start + size]
        product = np.matmul(rows, columns.T, out=out[: len(rows), : len(columns)])
        if self.squared_norms is None:
            return product
        norms = np.sqrt(
            np.outer(
                self.squared_norms[start : start + size],
                other.squared_norms[other_start : other_start + size],
            )
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = np.where(norms > 0, product / norms, 0.0)
        product[...] = cosine  # rounded to float32 once, from the float64 quotient
        return product


@njit(nogil=True, cache=True)
def _scan_rows(
    similarities, first_row, last_row, first_query, first_column, skip_self, values, indices
):
    """Merge rows [first_row, last_row) of a block into their queries' running top-k.

    Row r is query first_query + r of `values` / `indices` (k best, best first; -inf / -1 where
    fewer were seen); column c is database image first_column + c, skipped where it is the query
    itself (skip_self: queries and database are the same images). Columns arrive in increasing
    database order and an equal similarity never passes one already kept, so ties keep the
    earlier image.
    """
    k = values.shape[1]
    for r in range(first_row, last_row):
        query = first_query + r
        best = values[query]
        best_index = indices[query]
        floor = best[k - 1]
        for c in range(similarities.shape[1]):
            v = similarities[r, c]
            if v > floor:
                image = first_column + c
                if skip_self and image == query:
                    continue
                floor = _insert(best, best_index, v, image)


@njit(nogil=True, cache=True)
def _insert(best, best_index, v, image):
    """Put (v, image) in its place in a query's k best (v beats the k-th; equal values stay
    ahead of it) and return the new k-th value."""
    p = best.size - 1
    while p > 0 and best[p - 1] < v:
        best[p] = best[p - 1]
        best_index[p] = best_index[p - 1]
        p -= 1
    best[p] = v
    best_index[p] = image
    return best[best.size - 1]


@njit(nogil=True, cache=True)
def _scan_columns(similarities, first_col, last_col, first_query, first_row_image, values, indices):
    """Merge columns [first_col, last_col) of a block into their queries' running top-k: column
    c is query first_query + c, row r database image first_row_image + r (never the query: an
    off-diagonal block). Rows are read in order, each a contiguous run of the block (no
    transposed copy), so candidates arrive in increasing database order, as the tie rule needs.
    """
    k = values.shape[1]
    floors = np.empty(last_col - first_col, np.float32)
    for c in range(first_col, last_col):
        floors[c - first_col] = values[first_query + c, k - 1]
    for r in range(similarities.shape[0]):
        for c in range(first_col, last_col):
            v = similarities[r, c]
            if v > floors[c - first_col]:
                query = first_query + c
                floors[c - first_col] = _insert(
                    values[query], indices[query], v, first_row_image + r
                )


class TopK:
    """The running k best (similarity, database image) of each query, best first."""

    def __init__(self, n_queries: int, k: int, workers: int) -> None:
        self.values = np.full((n_queries, k), -np.inf, np.float32)
        self.indices = np.full((n_queries, k), -1, np.int64)
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def _in_parallel(self, kernel, n: int, *arguments) -> None:
        """kernel(start, stop, *arguments) over `workers` ranges of n (the kernels drop the GIL)."""
        if self._pool is None:
            kernel(0, n, *arguments)
            return
        step = -(-n // self.workers)
        futures = [
            self._pool.submit(kernel, start, min(start + step, n), *arguments)
            for start in range(0, n, step)
        ]
        for future in futures:
            future.result()

    def merge_rows(
        self, block: np.ndarray, first_query: int, first_image: int, skip_self: bool
    ) -> None:
        """Merge a block of similarities whose rows are queries from `first_query` and columns
        database images from `first_image` (skip_self: the block holds query-self pairs)."""

        def kernel(start, stop, *arguments):
            _scan_rows(block, start, stop, *arguments)

        top = (self.values, self.indices)
        self._in_parallel(kernel, block.shape[0], first_query, first_image, skip_self, *top)

    def merge_columns(self, block: np.ndarray, first_query: int, first_image: int) -> None:
        """Merge a block whose columns are queries from `first_query` and rows database images
        from `first_image` (an off-diagonal block of leave-one-out, read as its transpose)."""

        def kernel(start, stop, *arguments):
            _scan_columns(block, start, stop, *arguments)

        top = (self.values, self.indices)
        self._in_parallel(kernel, block.shape[1], first_query, first_image, *top)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _workers(workers: int | None) -> int:
    return max(1, workers or os.cpu_count() or 1)


def leave_one_out(
    cosines: Cosines, k: int, workers: int | None = None, block: int = BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """Each image's k most similar other images: (indices, similarities), each (images, k),
    best first; -1 / -inf where fewer than k others exist.

    Each pair's similarity is computed once: blocks (I, J) with J >= I, block by block in
    row-major order, merged into the top-k of rows I (by rows) and of rows J (by columns). Every
    query then meets its candidates in increasing database order, which makes the tie rule hold.
    """
    n = len(cosines)
    threads = _workers(workers)
    top = TopK(n, k, threads)
    buffer = np.empty((block, block), np.float32)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            for i in range(0, n, block):
                for j in range(i, n, block):
                    product = cosines.block(i, cosines, j, block, buffer)
                    top.merge_rows(product, i, j, skip_self=i == j)
                    if j != i:
                        top.merge_columns(product, j, i)
    finally:
        top.close()
    return top.indices, top.values


def most_similar(
    queries: Cosines,
    database: Cosines,
    k: int,
    workers: int | None = None,
    block: int = BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k most similar database images: (indices, similarities), each (queries, k),
    best first."""
    if queries.rows.shape[1] != database.rows.shape[1]:
        raise ValueError(
            f"queries have {queries.rows.shape[1]} features, the database {database.rows.shape[1]}"
        )
    if (queries.squared_norms is None) != (database.squared_norms is None):
        raise ValueError("queries and database must both be three-valued, or both not")
    threads = _workers(workers)
    top = TopK(len(queries), k, threads)
    buffer = np.empty((block, block), np.float32)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            for i in range(0, len(queries), block):
                for j in range(0, len(database), block):
                    product = queries.block(i, database, j, block, buffer)
                    top.merge_rows(product, i, j, skip_self=False)
    finally:
        top.close()
    return top.indices, top.values
