"""One process's block of a data file's rows, read without reading the other blocks.

On JAX's distributed runtime each process holds only its own rows (docs/design.md 16).
The N data rows are cut into ``num_processes`` consecutive blocks whose sizes differ by
at most one (``numpy.array_split``'s); process ``i`` reads block ``i``. Messages name the
file's own line (CSV) or row (``.npy``), as a whole read would.

A CSV file is read twice, line by line: once to count its data lines, once to keep those
of the block. A ``.npy`` file is memory-mapped and only the block's rows are copied.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from bgmm.data.checks import MAX_FEATURES, too_many_features_error
from bgmm.data.delimited import (
    TextBlock,
    header_names,
    parse_delimited_text,
    sniff_delimiter,
)
from bgmm.data.errors import DataError
from bgmm.data.npy import NPY_MAGIC, as_finite_table

__all__ = ["block_bounds", "load_block"]


def block_bounds(num_rows: int, num_blocks: int, index: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of block ``index`` of ``num_blocks`` (sizes differ by <= 1)."""
    size, extra = divmod(num_rows, num_blocks)
    start = index * size + min(index, extra)
    return start, start + size + (index < extra)


def load_block(
    path: str | os.PathLike, index: int, num_blocks: int
) -> tuple[np.ndarray, list[str] | None, int]:
    """Block ``index`` of ``num_blocks`` of a ``.npy`` or CSV file's data rows.

    Parameters
    ----------
    path : path of the file (not standard input: every process opens it)
    index, num_blocks : int

    Returns
    -------
    rows : array, shape (N_index, D), finite float64
    names : list of D str, or None (a .npy file, or a CSV file without a header)
    num_rows : int
        N, the data rows of the whole file.

    Raises
    ------
    DataError
        The file's problems, as :func:`bgmm.data.load_table` names them, for the block's
        rows and the file's first line; a file with fewer rows than blocks.
    """
    source = os.fspath(path)
    if source == "-":
        raise DataError("split rows read a file, not standard input: every process opens it")
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except FileNotFoundError:
        raise DataError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a directory, not a data file") from None
    except OSError as exc:
        raise DataError(f"{source}: cannot read the file ({exc.strerror or exc})") from None
    if source.lower().endswith(".npy") or magic == NPY_MAGIC:
        rows, num_rows = _npy_block(source, index, num_blocks)
        return rows, None, num_rows
    return _csv_block(source, index, num_blocks)


def _npy_block(source: str, index: int, num_blocks: int) -> tuple[np.ndarray, int]:
    """The block's rows and N, the block copied from a memory map of the file."""
    try:
        array = np.load(source, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{source}: not a valid .npy file ({exc})") from None
    if array.ndim == 2 and array.shape[1] > MAX_FEATURES:
        raise too_many_features_error(source, array.shape[1])
    _check_enough_rows(source, array.shape[0] if array.ndim else 0, num_blocks)
    start, stop = block_bounds(array.shape[0], num_blocks, index)
    rows = as_finite_table(np.array(array[start:stop]), source, first_row=start)
    return rows, int(array.shape[0])


def _csv_block(source: str, index: int, num_blocks: int):
    """The block's rows, the header's names and N, from two passes over the lines."""
    first_line, first_text, last_data_line = _scan_lines(source)
    delimiter = sniff_delimiter(first_text)
    first_row = next(csv.reader([first_text], delimiter=delimiter, skipinitialspace=True))
    names = header_names(first_text)
    first_data_line = first_line + 1 if names is not None else first_line
    num_rows = last_data_line - first_data_line + 1
    _check_enough_rows(source, num_rows, num_blocks)
    start, stop = block_bounds(num_rows, num_blocks, index)
    text = _read_lines(source, first_data_line + start, first_data_line + stop)
    block = TextBlock(
        first_line=first_data_line + start,
        header=None if names is None else [cell.strip() for cell in first_row],
        num_columns=len(first_row),
        delimiter=delimiter,
    )
    rows = parse_delimited_text(text, source, block)
    return rows, names, num_rows


def _check_enough_rows(source: str, num_rows: int, num_blocks: int) -> None:
    if num_rows < num_blocks:
        raise DataError(f"{source}: {num_rows} data rows for {num_blocks} processes")


def _scan_lines(source: str) -> tuple[int, str, int]:
    """The first non-blank line's number and text, and the last non-blank line's number."""
    first_line, first_text, last_line = 0, "", 0
    with open(source, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.strip():
                if not first_line:
                    first_line, first_text = number, _decode(raw, source, number)
                last_line = number
    if not first_line:
        raise DataError(f"{source}: file is empty")
    if first_line > 1:
        raise DataError(
            f"{source}: line 1 is blank (no values); blank lines are only allowed at the end "
            "of the file"
        )
    return first_line, first_text.rstrip("\r\n"), last_line


def _read_lines(source: str, first: int, stop: int) -> str:
    """Lines ``first`` to ``stop - 1`` (1-based) of the file, decoded; all before its last
    non-blank line, so none may be blank."""
    kept = []
    with open(source, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number >= stop:
                break
            if number >= first:
                if not raw.strip():
                    raise DataError(
                        f"{source}: line {number} is blank (no values); blank lines are only "
                        "allowed at the end of the file"
                    )
                kept.append(_decode(raw, source, number))
    return "".join(kept)


def _decode(raw: bytes, source: str, line: int) -> str:
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{source}: line {line} is not UTF-8 text") from None
