"""Parsing delimited text (CSV, TSV, semicolon-separated) into validated data.

The delimiter is whichever of ``','``, ``'\\t'`` and ``';'`` occurs most often in the first
non-blank line. Well-formed text is parsed by ``np.loadtxt``; anything in doubt is parsed again
cell by cell, which finds the first problem and names its line and column.
"""

from __future__ import annotations

import csv
import io
import math
import re
from array import array
from typing import NamedTuple

import numpy as np

from bgmm.data.checks import MAX_FEATURES, too_many_features_error
from bgmm.data.errors import DataError, plural, quoted

__all__ = [
    "DELIMITERS",
    "MISSING_TOKENS",
    "TextBlock",
    "header_names",
    "parse_delimited_text",
    "sniff_delimiter",
]

#: Cell texts (compared case-insensitively, after stripping whitespace) that
#: mean "no value here".  They are reported as missing values rather than as
#: non-numbers, and they do not make a first row count as a header.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "-nan", "+nan", "null", "none"})

#: The delimiters recognised, in order of preference when equally frequent.
DELIMITERS = (",", "\t", ";")

# A plain decimal number (ASCII digits only) or an inf/nan spelling. Python's float() also
# takes "1_000" and non-ASCII digits such as "١٢٣"; those are not numbers in a data file.
_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)",
    re.ASCII | re.IGNORECASE,
)


def header_names(text: str) -> list[str] | None:
    """The column names of the text's header, if its first row is one.

    A first row is a header if at least one of its cells is neither a number nor a
    missing-value marker (:data:`MISSING_TOKENS`).

    Parameters
    ----------
    text : str
        The whole file, decoded.

    Returns
    -------
    list of D str, or None
        The stripped cells, an empty one named ``x<j>`` (0-based); None without a header.
    """
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=sniff_delimiter(text), skipinitialspace=True
    )
    row = next(reader, [])
    if not _is_header(row):
        return None
    return [cell.strip() or f"x{j}" for j, cell in enumerate(row)]


class TextBlock(NamedTuple):
    """Where a block of a file's data lines sits in the file, for its messages.

    Attributes
    ----------
    first_line : int
        The file's line number of the block's first line.
    header : list of str or None
        The file's column names (its first line), if it has a header.
    num_columns : int
        Columns of every row (those of the file's first line).
    delimiter : str
        The file's delimiter (sniffed from its first line).
    """

    first_line: int
    header: list[str] | None
    num_columns: int
    delimiter: str


def parse_delimited_text(text: str, source: str, block: TextBlock | None = None) -> np.ndarray:
    """Parse delimited text into validated data (the header, if any, skipped).

    Parameters
    ----------
    text : str
        The whole file, decoded; or, with ``block``, some of its data lines.
    source : str
        Its name, for messages.
    block : TextBlock, optional
        ``text`` is a block of data lines (no header) of the file ``block`` describes;
        messages give the file's line numbers.

    Returns
    -------
    numpy.ndarray, shape (N, D)
        float64, finite, ``N >= 1``, ``1 <= D <= MAX_FEATURES``.

    Raises
    ------
    DataError
        At the first problem, naming its line and column: empty text, no data rows, a blank
        line before the end, rows of different lengths, a cell that is not a plain decimal
        number, a missing or infinite value, or too many columns.
    """
    if not text.strip():
        raise DataError(f"{source}: file is empty")

    delimiter = sniff_delimiter(text) if block is None else block.delimiter
    data = _parse_with_loadtxt(text, delimiter, source, block)
    if data is None:
        data = _parse_cell_by_cell(text, delimiter, source, block)
    if data.shape[1] > MAX_FEATURES:
        raise too_many_features_error(source, data.shape[1])
    return data


def _parse_with_loadtxt(
    text: str, delimiter: str, source: str, block: TextBlock | None = None
) -> np.ndarray | None:
    """Parse well-formed CSV text with ``np.loadtxt``; ``None`` if in any doubt.

    Returns an array only when the text is certainly valid: the first line is a
    header or a data row, and every following line up to the last non-blank one
    is a data row of as many numeric cells (no blank, split or ragged lines), all
    finite.  When only the finiteness fails, the first non-finite value is
    reported here (its line is known); anything else is left to
    :func:`_parse_cell_by_cell`, which also writes the error messages.
    """
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines
    reader = csv.reader(lines, delimiter=delimiter, skipinitialspace=True)
    try:
        first = next(reader)
    except (csv.Error, StopIteration):
        return None
    if _is_blank(first):
        return None  # leading blank line
    skip = reader.line_num if block is None and _is_header(first) else 0
    num_rows = len(lines) - skip
    if block is not None and len(first) != block.num_columns:
        return None
    if num_rows < 1:
        return None
    try:
        data = np.loadtxt(
            lines,
            dtype=np.float64,
            delimiter=delimiter,
            comments=None,
            quotechar='"',
            skiprows=skip,
            ndmin=2,
        )
    except ValueError:
        return None
    # Fewer rows than lines means loadtxt skipped blank lines or joined quoted lines.
    if data.shape != (num_rows, len(first)):
        return None
    finite = np.isfinite(data)
    if not finite.all():
        # Each data row is exactly one line here, so the row index gives the line.
        r, c = np.unravel_index(int(np.argmin(finite)), finite.shape)
        line = skip + int(r) + 1
        row = next(csv.reader([lines[line - 1]], delimiter=delimiter, skipinitialspace=True))
        header = [cell.strip() for cell in first] if skip else None
        if block is not None:
            line, header = line + block.first_line - 1, block.header
        raise _non_finite_error(source, line, int(c), header, row[c].strip(), data[r, c])
    return data


def _parse_cell_by_cell(
    text: str, delimiter: str, source: str, block: TextBlock | None = None
) -> np.ndarray:
    """Parse CSV text cell by cell, raising a :class:`DataError` at the first problem."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    values = array("d")  # row after row; a list of floats would take four times the memory
    lines = array("q")  # first file line of each data row
    header: list[str] | None = None
    ncols = 0
    first_line = 0
    offset = 0  # file line of the text's line 0
    if block is not None:
        header, ncols, first_line, offset = block.header, block.num_columns, 1, block.first_line - 1
    blank_line = 0  # first line of the current run of blank lines, 0 if none
    end = offset
    try:
        for row in reader:
            start, end = end + 1, reader.line_num + offset
            if _is_blank(row):
                blank_line = blank_line or start
                continue
            if blank_line:
                raise DataError(
                    f"{source}: line {blank_line} is blank (no values); blank lines are only "
                    "allowed at the end of the file"
                )
            if not ncols:
                ncols, first_line = len(row), start
                if _is_header(row):
                    header = [cell.strip() for cell in row]
                    continue
            if len(row) != ncols:
                raise _ragged_error(source, row, start, ncols, first_line)
            try:
                values.extend(map(_to_float, row))
            except ValueError:
                raise _cell_error(source, row, start, header, delimiter) from None
            lines.append(start)
    except csv.Error as exc:
        raise DataError(f"{source}: line {end + 1}: cannot parse the CSV text ({exc})") from None

    if not lines:
        raise DataError(f"{source}: no data rows (only a header, on line {first_line})")
    data = np.frombuffer(values, dtype=np.float64).reshape(len(lines), ncols).copy()
    finite = np.isfinite(data)
    if not finite.all():
        r, c = np.unravel_index(int(np.argmin(finite)), finite.shape)
        line = lines[r]
        cell = _find_cell(text, delimiter, line - offset, int(c))
        raise _non_finite_error(source, line, int(c), header, cell, data[r, c])
    return data


def sniff_delimiter(text: str) -> str:
    """Pick the delimiter that occurs most often in the first non-blank line."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if line.strip():
            counts = [line.count(d) for d in DELIMITERS]
            best = max(range(len(DELIMITERS)), key=lambda i: counts[i])
            return DELIMITERS[best] if counts[best] else ","
        start = end + 1
    return ","


def _is_blank(row: list[str]) -> bool:
    """A row is blank if it has no cells or only empty (or whitespace) cells, like ``',,'``."""
    return all(not cell.strip() for cell in row)


def _to_float(cell: str) -> float:
    """The value of a cell holding a plain decimal number (see :data:`_NUMBER`)."""
    text = cell.strip()
    if _NUMBER.fullmatch(text) is None:
        raise ValueError(f"not a number: {cell!r}")
    return float(text)


def _is_plain_number(cell: str) -> bool:
    try:
        _to_float(cell)
    except ValueError:
        return False
    return True


def _python_float_accepts(cell: str) -> bool:
    """Whether Python's lenient float() takes the cell (``1_000``, non-ASCII digits ...)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_header(row: list[str]) -> bool:
    """A first row is a header if some cell is neither a number nor a missing-value marker.

    Numbers here are Python's (``1_000`` included), so that a first data row with such a
    cell is reported as a bad value rather than silently taken for a header.
    """
    return any(
        not _python_float_accepts(cell) and cell.strip().lower() not in MISSING_TOKENS
        for cell in row
    )


def _cell_location(source: str, line: int, col: int, header: list[str] | None) -> str:
    """``'<source>: line L, column C ('name')'`` for 0-based column ``col``."""
    where = f"{source}: line {line}, column {col + 1}"
    if header is not None and header[col]:
        where += f" ({quoted(header[col])})"
    return where


def _ragged_error(source: str, row: list[str], line: int, ncols: int, first: int) -> DataError:
    if any("\n" in cell or "\r" in cell for cell in row):
        return DataError(
            f"{source}: line {line}: a quoted cell runs over several lines "
            "(is a closing '\"' missing?)"
        )
    return DataError(
        f"{source}: line {line} has {plural(len(row), 'column')}, "
        f"expected {ncols} (as in line {first})"
    )


def _cell_error(
    source: str, row: list[str], line: int, header: list[str] | None, delimiter: str
) -> DataError:
    """Describe the first cell of ``row`` that ``float`` rejects."""
    for col, cell in enumerate(row):
        if _is_plain_number(cell):
            continue
        where = _cell_location(source, line, col, header)
        if cell.strip().lower() in MISSING_TOKENS:
            return DataError(f"{where}: missing value {quoted(cell.strip())}")
        if "\n" in cell or "\r" in cell:
            return DataError(
                f"{where}: a quoted cell runs over several lines (is a closing '\"' missing?)"
            )
        hint = ""
        if delimiter != "," and "," in cell and _is_plain_number(cell.replace(",", ".")):
            hint = " (use '.' as the decimal point)"
        elif "_" in cell and _python_float_accepts(cell):
            hint = " (no '_' digit separators)"
        elif _python_float_accepts(cell):
            hint = " (only ASCII digits)"
        return DataError(f"{where}: {quoted(cell.strip())} is not a number{hint}")
    return DataError(f"{source}: line {line}: cannot parse the row")  # pragma: no cover


def _non_finite_error(
    source: str, line: int, col: int, header: list[str] | None, cell: str, value: float
) -> DataError:
    """Report the cell text ``cell`` that parsed to the non-finite ``value``."""
    where = _cell_location(source, line, col, header)
    if math.isnan(value):
        return DataError(f"{where}: missing value {quoted(cell)}")
    return DataError(f"{where}: value {quoted(cell)} is not finite")


def _find_cell(text: str, delimiter: str, line: int, col: int) -> str:
    """Return the stripped text of column ``col`` (0-based) of the row starting at ``line``."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    end = 0
    for row in reader:
        start, end = end + 1, reader.line_num
        if start == line:
            return row[col].strip()
    return ""  # pragma: no cover
