"""BLAS thread limits from one threadpoolctl controller per process.

`threadpoolctl.threadpool_limits` finds the loaded BLAS / OpenMP libraries anew on every call by
reading the process's memory map: 22 ms a call, so the ridge fits of a 240-image test, limited
per factorisation, spent 32 of their 36 s there. The controller made once (after numpy and
scipy have loaded their libraries) keeps what it found; its `limit` costs microseconds.
"""

from __future__ import annotations

from functools import lru_cache

import scipy.linalg  # noqa: F401  (its BLAS loaded before the controller looks)
from threadpoolctl import ThreadpoolController


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def blas_threads(limits: int | None):
    """A context in which BLAS (and OpenMP) use at most `limits` threads (None: no limit)."""
    return _controller().limit(limits=limits)
