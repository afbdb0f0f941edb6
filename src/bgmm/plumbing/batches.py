"""Arrays in batches of one size, so that one compiled program serves every batch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["padded_batches"]


def padded_batches(array: np.ndarray, size: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Consecutive batches of ``size`` rows of ``array`` (N, ...), the last one padded by
    repeating its first row: a jitted function then sees one shape only.

    Yields
    ------
    start : int
        The batch's first row in ``array``.
    count : int
        Its real rows; the rest, up to ``size``, are padding to be dropped.
    batch : array, shape (size, ...)
    """
    size = max(1, min(int(size), len(array)))
    for start in range(0, len(array), size):
        batch = array[start : start + size]
        count = len(batch)
        if count < size:
            batch = np.concatenate([batch, np.repeat(batch[:1], size - count, axis=0)])
        yield start, count, batch
