"""Arrays in batches of one size, so that one compiled program serves every batch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["PADDED_ROWS_MAX", "padded_batches", "padded_rows"]


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


# Row counts padded up to a size of a grid share compiled programs (padded_rows). Padding
# pays while compiling (seconds) costs more than the extra rows cost a run: at 2^15 rows a
# run of default length spends about as long on a tenth more rows as a compile takes.
PADDED_ROWS_MAX = 2**15
# The E12 series of preferred numbers: successive sizes differ by 18% to 25%.
_E12 = (10, 12, 15, 18, 22, 27, 33, 39, 47, 56, 68, 82)


def padded_rows(num_rows: int) -> int:
    """The number of rows ``num_rows`` rows are padded to: the smallest E12 size (10, 12,
    15, 18, 22, 27, 33, 39, 47, 56, 68, 82 times a power of ten) strictly above it.

    Strictly above, so that data of a round size have room to grow: 1,000 and 1,100 rows
    both get 1,200. No padding below 10 rows, of zero rows, or above ``PADDED_ROWS_MAX``.
    """
    if num_rows < 10 or num_rows > PADDED_ROWS_MAX:
        return num_rows
    power = 1
    while True:
        for mantissa in _E12:
            if mantissa * power > num_rows:
                return mantissa * power
        power *= 10
