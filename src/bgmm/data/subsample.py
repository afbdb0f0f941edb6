"""A random subset of the rows, for computations whose cost grows with N."""

from __future__ import annotations

import numpy as np

__all__ = ["subsample_rows"]


def subsample_rows(x: np.ndarray, size: int | None, seed: int = 0) -> np.ndarray:
    """At most ``size`` rows of ``x`` (N, ...), drawn without replacement, in their order.

    Parameters
    ----------
    x : array, shape (N, ...)
    size : int or None
        None: all rows.
    seed : int

    Returns
    -------
    array, shape (min(N, size), ...)
        ``x`` itself when it has no more rows than ``size``.
    """
    if size is None or len(x) <= size:
        return x
    rows = np.random.default_rng(seed).choice(len(x), size=size, replace=False)
    return x[np.sort(rows)]
