"""Loading, validating and standardising the data to be clustered.

The data are an ``(N, D)`` array of finite float64 values: ``N`` observations
(rows) of ``D`` features (columns).  :func:`load_data` reads it from a ``.npy``
file or from a delimited text (CSV) file and turns every problem with the input
into a :class:`DataError` whose message names the file and, where it applies,
the line (CSV), row (``.npy``) and column of the offending value.

The model works in standardised units; :class:`Standardizer` maps data into
those units and maps fitted component parameters back into data units.
"""

from __future__ import annotations

import csv
import io
import math
import operator
import os
import re
import sys
import warnings
from array import array
from typing import BinaryIO, NamedTuple

import numpy as np

from bgmm.errors import UserError

__all__ = [
    "MAX_FEATURES",
    "DataError",
    "DataWarning",
    "Standardizer",
    "check_draws_memory",
    "check_extreme_values",
    "check_num_components",
    "check_num_features",
    "check_value_range",
    "draws_memory_bytes",
    "load_data",
    "load_table",
    "parse_table",
    "read_input",
]

#: Cell texts (compared case-insensitively, after stripping whitespace) that
#: mean "no value here".  They are reported as missing values rather than as
#: non-numbers, and they do not make a first row count as a header.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "-nan", "+nan", "null", "none"})

#: The most features (columns) bgmm fits. The likelihood's per-observation feature vector has
#: 1 + D + D^2 entries and each component 1 + D + D(D+1)/2 parameters: beyond D = 1000 that is
#: over 10^6 and 5 x 10^5, more than HMC can explore and, at the default 4 x 1000 draws,
#: tens of GiB of draws per component.
MAX_FEATURES = 1000

#: Name of standard input (``"-"``) in messages.
STDIN_NAME = "<stdin>"

_DELIMITERS = (",", "\t", ";")
_NPY_MAGIC = b"\x93NUMPY"
_MAX_SHOWN = 40
_CHUNK = 2**20
_UTF16_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
# A plain decimal number (ASCII digits only) or an inf/nan spelling. Python's float() also
# takes "1_000" and non-ASCII digits such as "١٢٣"; those are not numbers in a data file.
_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)",
    re.ASCII | re.IGNORECASE,
)


class DataError(UserError):
    """A problem with the user's data, described in one human-readable line.

    ``str(error)`` is a complete message meant to be shown as
    ``error: <message>``.  It starts with the file name and names the line (for
    CSV files; 1-based line numbers of the file, so a header is line 1), the
    row (for ``.npy`` files; 1-based) and the column (1-based, with the header
    name in parentheses when the CSV file has a header) where these apply,
    e.g. ``data.csv: line 5, column 2 ('y'): 'abc' is not a number``.
    Line breaks in the message are escaped so that it is always one line.
    """


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_data(path: str | os.PathLike) -> np.ndarray:
    """Load a data matrix from a ``.npy`` or delimited text file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read, or ``"-"`` for standard input.  It is opened and read exactly
        once, so FIFOs and process substitution (``<(cat data.csv)``) work.  A file whose
        name ends in ``.npy`` (or whose content starts with the NumPy magic string) is
        read as a NumPy array, without unpickling (as ``np.load(allow_pickle=False)``);
        it must hold an integer or floating point array of shape ``(N,)`` (read as
        ``(N, 1)``) or ``(N, D)``.
        Any other file is read as UTF-8 delimited text: the delimiter is
        whichever of ``','``, ``'\\t'`` and ``';'`` occurs most often in the
        first non-blank line (``','`` if none does); cells may be quoted and
        surrounding whitespace is ignored.  Numbers are plain decimals
        (``-1``, ``2.5``, ``.5``, ``1e-3``); Python-only spellings such as ``1_000``
        or non-ASCII digits are not numbers.  The first row is a header if at
        least one of its cells is neither a number nor a missing-value marker
        (empty, ``NA``, ``N/A``, ``NaN``, ``null``, ``None``).  Blank lines
        (whitespace only, or only empty cells such as ``,,``) at the end of the
        file are ignored; any other blank line is an error.

    Returns
    -------
    numpy.ndarray
        Array of shape ``(N, D)`` with ``N >= 1`` and ``1 <= D <=`` :data:`MAX_FEATURES`,
        dtype float64, all values finite.

    Raises
    ------
    DataError
        If the file is missing or unreadable, is larger than :func:`max_input_bytes`, is
        not valid UTF-8 text (CSV) or a valid ``.npy`` file, is empty, has no data rows,
        has rows of different lengths, has more than :data:`MAX_FEATURES` columns, or
        contains a non-numeric, missing or infinite value.  The message names the file,
        and the line or row and the column where they apply.
    """
    return load_table(path)[0]


def load_table(path: str | os.PathLike) -> tuple[np.ndarray, list[str] | None]:
    """:func:`load_data`, plus the CSV header's column names when the file has one.

    The input is read once (see :func:`load_data`).

    Returns
    -------
    data : numpy.ndarray, shape (N, D)
    names : list of D str, or None for a .npy file or a CSV file without a header
    """
    raw, source = read_input(path)
    return parse_table(raw, source)


def read_input(path: str | os.PathLike) -> tuple[bytes, str]:
    """Read every byte of a data file (``"-"``: standard input) with a single ``open``.

    Reading once matters for FIFOs and process substitution, whose bytes can be read only
    once. Binary streams are refused from their first megabyte (``/dev/zero`` would never
    end), and no input larger than :func:`max_input_bytes` is read.

    Returns
    -------
    raw : bytes
    source : str
        The name used in messages: the path as given, or ``<stdin>``.
    """
    source = os.fspath(path)
    if isinstance(source, bytes):
        source = os.fsdecode(source)
    limit = max_input_bytes()
    if source == "-":
        return _read_stream(sys.stdin.buffer, STDIN_NAME, limit), STDIN_NAME
    try:
        with open(path, "rb") as f:
            return _read_stream(f, source, limit), source
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a directory, not a data file") from None
    except PermissionError:
        raise DataError(f"{source}: permission denied (cannot read the file)") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DataError(f"{source}: cannot read the file ({reason})") from None
    except ValueError as exc:  # e.g. an embedded NUL byte in the name
        raise DataError(f"{source}: not a valid file name ({exc})") from None


def parse_table(raw: bytes, source: str) -> tuple[np.ndarray, list[str] | None]:
    """Parse the bytes of a ``.npy`` or CSV file, as :func:`load_table` does.

    Parameters
    ----------
    raw : bytes
        The whole file.
    source : str
        Its name, for messages; a name ending in ``.npy`` selects the NumPy format (as does
        content starting with the NumPy magic string), ``.npz`` is refused.

    Returns
    -------
    data : numpy.ndarray, shape (N, D)
    names : list of D str, or None
    """
    suffix = os.path.splitext(source)[1].lower()
    if suffix == ".npy" or raw.startswith(_NPY_MAGIC):
        return _load_npy(raw, source), None
    if suffix == ".npz":
        raise DataError(
            f"{source}: .npz archives are not supported; save a single array with "
            "numpy.save (.npy) or write a CSV file"
        )
    text = _decode(raw, source)
    data = _load_csv(text, source)
    return data, _header_names(text)


def max_input_bytes() -> int:
    """The largest input read: a quarter of the machine's memory (8 GiB if unknown).

    Parsing a CSV file takes several times its size in memory; beyond this the machine
    would swap or the process be killed, so bgmm stops with a message instead.
    """
    total = physical_memory_bytes()
    return 8 * 2**30 if total is None else max(total // 4, 2**20)


def _read_stream(f: BinaryIO, source: str, limit: int) -> bytes:
    """Read ``f`` to its end in chunks, refusing binary streams and inputs over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = f.read(_CHUNK)
        except IsADirectoryError:
            raise
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise DataError(f"{source}: cannot read the file ({reason})") from None
        if not chunk:
            return b"".join(chunks)
        if not chunks:
            _refuse_binary_start(chunk, source)
        size += len(chunk)
        if size > limit:
            raise DataError(
                f"{source}: larger than {_format_bytes(limit)}, the most bgmm reads on this "
                "machine (a quarter of its memory)"
            )
        chunks.append(chunk)


def _refuse_binary_start(head: bytes, source: str) -> None:
    """Refuse UTF-16/32 text and binary data from the first chunk (NumPy files excepted)."""
    if head.startswith(_NPY_MAGIC):
        return
    for bom, name in _UTF16_BOMS:
        if head.startswith(bom):
            raise DataError(
                f"{source}: {name} text (byte-order mark {bom.hex(' ').upper()}); save it as UTF-8"
            )
    nul = head.find(b"\x00")
    if nul >= 0:
        line = head.count(b"\n", 0, nul) + 1
        raise DataError(
            f"{source}: line {line}: NUL byte (binary data?); expected a UTF-8 CSV file or "
            "a .npy file"
        )


def _format_bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _decode(raw: bytes, source: str) -> str:
    """UTF-8 text of a CSV file (a leading BOM dropped), or a :class:`DataError`."""
    _refuse_binary_start(raw, source)
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise DataError(
            f"{source}: line {line}: NUL byte (binary data?); expected a UTF-8 CSV file or "
            "a .npy file"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start]
        raise DataError(
            f"{source}: line {line}: not valid UTF-8 text (byte 0x{byte:02x}); "
            "expected a UTF-8 CSV file or a .npy file"
        ) from None


def _header_names(text: str) -> list[str] | None:
    """The first row's cells when they form a header (see :func:`load_data`), else None."""
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text), skipinitialspace=True
    )
    row = next(reader, [])
    if not _is_header(row):
        return None
    return [cell.strip() or f"x{j}" for j, cell in enumerate(row)]


def _npy_header(raw: bytes) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """Shape, dtype and data offset from a ``.npy`` header; None if it cannot be read here
    (``np.lib.format.read_array`` then reports the problem)."""
    fp = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            return None
    except (ValueError, OSError, EOFError, SyntaxError, TypeError):
        return None
    return tuple(int(n) for n in shape), dtype, fp.tell()


def _load_npy(raw: bytes, source: str) -> np.ndarray:
    """Read the bytes of a ``.npy`` file into a validated ``(N, D)`` float64 array."""
    if not raw:
        raise DataError(f"{source}: file is empty")
    if not raw.startswith(_NPY_MAGIC):
        raise DataError(
            f"{source}: not a valid .npy file (it does not start with the NumPy format header)"
        )
    header = _npy_header(raw)
    if header is not None:
        # Checked before reading: read_array allocates what the header claims, so a
        # hostile or truncated header could ask for terabytes.
        shape, dtype, offset = header
        if dtype.hasobject:
            raise DataError(f"{source}: not a numeric array (the .npy file holds Python objects)")
        if len(shape) == 2 and shape[1] > MAX_FEATURES:
            raise _too_many_features(source, shape[1])
        expected = math.prod(shape) * dtype.itemsize
        if len(raw) - offset < expected:
            raise DataError(
                f"{source}: not a valid .npy file (truncated: its header says shape {shape} "
                f"of {dtype}, {expected} bytes, but {len(raw) - offset} follow)"
            )
    try:
        arr = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(
                f"{source}: not a numeric array (the .npy file holds Python objects)"
            ) from None
        raise DataError(f"{source}: not a valid .npy file ({exc})") from None
    except (OSError, EOFError, SyntaxError, TypeError) as exc:
        raise DataError(f"{source}: not a valid .npy file ({exc})") from None

    kind = arr.dtype.kind
    if kind == "b":
        raise DataError(f"{source}: array holds booleans; expected numbers (integer or float)")
    if kind not in "iuf":
        raise DataError(
            f"{source}: array has dtype {arr.dtype}; expected numbers (integer or float)"
        )
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    elif arr.ndim != 2:
        raise DataError(
            f"{source}: array has shape {arr.shape}; expected a 1-D (N,) or 2-D (N, D) array"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{source}: array has no rows (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise DataError(f"{source}: array has no columns (shape {arr.shape})")
    if arr.shape[1] > MAX_FEATURES:
        raise _too_many_features(source, arr.shape[1])

    data = np.ascontiguousarray(arr, dtype=np.float64)
    finite = np.isfinite(data)
    if not finite.all():
        r, c = np.unravel_index(int(np.argmin(finite)), finite.shape)
        original = arr[r, c]
        where = f"{source}: row {r + 1}, column {c + 1}"
        if np.isnan(data[r, c]):
            raise DataError(f"{where}: missing value (NaN)")
        raise DataError(f"{where}: value {original} is not finite")
    return data


def _load_csv(text: str, source: str) -> np.ndarray:
    """Parse delimited text into a validated ``(N, D)`` array."""
    if not text.strip():
        raise DataError(f"{source}: file is empty")

    delimiter = _sniff_delimiter(text)
    data = _fast_parse(text, delimiter, source)
    if data is None:
        data = _careful_parse(text, delimiter, source)
    if data.shape[1] > MAX_FEATURES:
        raise _too_many_features(source, data.shape[1])
    return data


def _fast_parse(text: str, delimiter: str, source: str) -> np.ndarray | None:
    """Parse well-formed CSV text with ``np.loadtxt``; ``None`` if in any doubt.

    Returns an array only when the text is certainly valid: the first line is a
    header or a data row, and every following line up to the last non-blank one
    is a data row of as many numeric cells (no blank, split or ragged lines), all
    finite.  When only the finiteness fails, the first non-finite value is
    reported here (its line is known); anything else is left to
    :func:`_careful_parse`, which also writes the error messages.
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
    skip = reader.line_num if _is_header(first) else 0
    num_rows = len(lines) - skip
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
        raise _non_finite_error(source, line, int(c), header, row[c].strip(), data[r, c])
    return data


def _careful_parse(text: str, delimiter: str, source: str) -> np.ndarray:
    """Parse CSV text cell by cell, raising a :class:`DataError` at the first problem."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    values = array("d")
    lines = array("q")  # first file line of each data row
    header: list[str] | None = None
    ncols = 0
    first_line = 0
    blank_line = 0  # first line of the current run of blank lines, 0 if none
    end = 0
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
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
        cell = _find_cell(text, delimiter, line, int(c))
        raise _non_finite_error(source, line, int(c), header, cell, data[r, c])
    return data


def _sniff_delimiter(text: str) -> str:
    """Pick the delimiter that occurs most often in the first non-blank line."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if line.strip():
            counts = [line.count(d) for d in _DELIMITERS]
            best = max(range(len(_DELIMITERS)), key=lambda i: counts[i])
            return _DELIMITERS[best] if counts[best] else ","
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


def _parses_as_float(cell: str) -> bool:
    try:
        _to_float(cell)
    except ValueError:
        return False
    return True


def _python_float(cell: str) -> bool:
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
        not _python_float(cell) and cell.strip().lower() not in MISSING_TOKENS for cell in row
    )


def _show(cell: str) -> str:
    """Quote a cell for a message, shortening very long ones."""
    if len(cell) > _MAX_SHOWN:
        cell = cell[: _MAX_SHOWN - 3] + "..."
    return repr(cell)


def _where(source: str, line: int, col: int, header: list[str] | None) -> str:
    """``'<source>: line L, column C ('name')'`` for 0-based column ``col``."""
    where = f"{source}: line {line}, column {col + 1}"
    if header is not None and header[col]:
        where += f" ({_show(header[col])})"
    return where


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _ragged_error(source: str, row: list[str], line: int, ncols: int, first: int) -> DataError:
    if any("\n" in cell or "\r" in cell for cell in row):
        return DataError(
            f"{source}: line {line}: a quoted cell runs over several lines "
            "(is a closing '\"' missing?)"
        )
    return DataError(
        f"{source}: line {line} has {_plural(len(row), 'column')}, "
        f"expected {ncols} (as in line {first})"
    )


def _cell_error(
    source: str, row: list[str], line: int, header: list[str] | None, delimiter: str
) -> DataError:
    """Describe the first cell of ``row`` that ``float`` rejects."""
    for col, cell in enumerate(row):
        if _parses_as_float(cell):
            continue
        where = _where(source, line, col, header)
        if cell.strip().lower() in MISSING_TOKENS:
            return DataError(f"{where}: missing value {_show(cell.strip())}")
        if "\n" in cell or "\r" in cell:
            return DataError(
                f"{where}: a quoted cell runs over several lines (is a closing '\"' missing?)"
            )
        hint = ""
        if delimiter != "," and "," in cell and _parses_as_float(cell.replace(",", ".")):
            hint = " (use '.' as the decimal point)"
        elif "_" in cell and _python_float(cell):
            hint = " (no '_' digit separators)"
        elif _python_float(cell):
            hint = " (only ASCII digits)"
        return DataError(f"{where}: {_show(cell.strip())} is not a number{hint}")
    return DataError(f"{source}: line {line}: cannot parse the row")  # pragma: no cover


def _non_finite_error(
    source: str, line: int, col: int, header: list[str] | None, cell: str, value: float
) -> DataError:
    """Report the cell text ``cell`` that parsed to the non-finite ``value``."""
    where = _where(source, line, col, header)
    if math.isnan(value):
        return DataError(f"{where}: missing value {_show(cell)}")
    return DataError(f"{where}: value {_show(cell)} is not finite")


def _find_cell(text: str, delimiter: str, line: int, col: int) -> str:
    """Return the stripped text of column ``col`` (0-based) of the row starting at ``line``."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    end = 0
    for row in reader:
        start, end = end + 1, reader.line_num
        if start == line:
            return row[col].strip()
    return ""  # pragma: no cover


# ---------------------------------------------------------------------------
# Standardisation
# ---------------------------------------------------------------------------


class Standardizer(NamedTuple):
    """Per-column affine map between data units ``y`` and standardised units ``z``.

    ``y = center + scale * z`` elementwise, i.e. ``y = c + D z`` with
    ``D = diag(scale)``.  Hence a mixture component ``N(mu, T^{-1})`` in ``z``
    units (mean ``mu``, precision ``T``) is ``N(c + D mu, D T^{-1} D)`` in ``y``
    units: its mean maps by :meth:`means_to_data`, its covariance by
    :meth:`covariance_to_data`, its precision ``D^{-1} T D^{-1}`` by
    :meth:`precision_to_data`, and a Cholesky factor ``L`` of the precision
    (``T = L L^T``) by :meth:`chol_precision_to_data` as ``D^{-1} L``, which is
    still lower triangular with a positive diagonal.

    Attributes
    ----------
    center : numpy.ndarray
        Shape ``(D,)``, float64: the column means of the fitted data.
    scale : numpy.ndarray
        Shape ``(D,)``, float64, positive: the column population standard
        deviations of the fitted data.
    """

    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, data: np.ndarray, source: str = "data") -> Standardizer:
        """Fit to the column means and population standard deviations of ``data``.

        Parameters
        ----------
        data : numpy.ndarray
            Shape ``(N, D)``, finite.
        source : str, optional
            Name of the data's file, used in error messages.

        Returns
        -------
        Standardizer
            With ``center`` and ``scale`` of shape ``(D,)``.

        Raises
        ------
        DataError
            If a column is constant (zero standard deviation).
        """
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2:
            raise ValueError(f"data must have shape (N, D), got {data.shape}")
        center = data.mean(axis=0)
        scale = data.std(axis=0)
        constant = (scale == 0) | (data.max(axis=0) == data.min(axis=0))
        if constant.any():
            j = int(np.argmax(constant))
            raise DataError(
                f"{source}: column {j + 1} is constant (every value is {data[0, j]:g}); "
                "it carries no information for clustering, remove it"
            )
        return cls(center=center, scale=scale)

    def _check(self, x: np.ndarray, square: bool) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        d = self.scale.shape[0]
        ok = x.ndim >= 2 and x.shape[-1] == d and (not square or x.shape[-2] == d)
        if not ok:
            expected = "(..., K, D, D)" if square else "(..., K, D)"
            raise ValueError(f"expected an array of shape {expected} with D={d}, got {x.shape}")
        return x

    def transform(self, data: np.ndarray) -> np.ndarray:
        """Standardise data: ``z = (y - center) / scale``.

        Parameters
        ----------
        data : numpy.ndarray
            Shape ``(N, D)``, in data units.

        Returns
        -------
        numpy.ndarray
            Shape ``(N, D)``, in standardised units.
        """
        data = self._check(data, square=False)
        return (data - self.center) / self.scale

    def means_to_data(self, means: np.ndarray) -> np.ndarray:
        """Map component means to data units: ``center + scale * means``.

        Parameters
        ----------
        means : numpy.ndarray
            Shape ``(..., K, D)``, in standardised units.

        Returns
        -------
        numpy.ndarray
            Shape ``(..., K, D)``, in data units.
        """
        means = self._check(means, square=False)
        return self.center + self.scale * means

    def chol_precision_to_data(self, chol: np.ndarray) -> np.ndarray:
        """Map Cholesky factors of precisions to data units: ``diag(1 / scale) @ L``.

        Parameters
        ----------
        chol : numpy.ndarray
            Shape ``(..., K, D, D)``: lower-triangular ``L`` with ``T = L L^T`` the
            precision in standardised units.

        Returns
        -------
        numpy.ndarray
            Shape ``(..., K, D, D)``: lower-triangular with positive diagonal, the
            Cholesky factor of the precision in data units.
        """
        chol = self._check(chol, square=True)
        return chol / self.scale[:, None]

    def covariance_to_data(self, cov: np.ndarray) -> np.ndarray:
        """Map covariances to data units: ``diag(scale) @ C @ diag(scale)``.

        Parameters
        ----------
        cov : numpy.ndarray
            Shape ``(..., K, D, D)``, in standardised units.

        Returns
        -------
        numpy.ndarray
            Shape ``(..., K, D, D)``, in data units.
        """
        cov = self._check(cov, square=True)
        return cov * self.scale[:, None] * self.scale[None, :]

    def precision_to_data(self, prec: np.ndarray) -> np.ndarray:
        """Map precisions to data units: ``diag(1 / scale) @ P @ diag(1 / scale)``.

        Parameters
        ----------
        prec : numpy.ndarray
            Shape ``(..., K, D, D)``, in standardised units.

        Returns
        -------
        numpy.ndarray
            Shape ``(..., K, D, D)``, in data units.
        """
        prec = self._check(prec, square=True)
        return prec / (self.scale[:, None] * self.scale[None, :])


# ---------------------------------------------------------------------------
# Sanity checks
# ---------------------------------------------------------------------------


def check_num_components(data: np.ndarray, num_components: int, source: str) -> None:
    """Check that ``data`` can be split into ``num_components`` components.

    Parameters
    ----------
    data : numpy.ndarray
        Shape ``(N, D)``.
    num_components : int
        The number of mixture components ``K``.
    source : str
        Name of the data's file, used in error messages.

    Raises
    ------
    DataError
        If ``K < 1`` or ``N < K``.
    """
    k = operator.index(num_components)
    if k < 1:
        raise DataError(f"{source}: the number of components must be at least 1, got {k}")
    n = int(np.shape(data)[0])
    if n < k:
        raise DataError(
            f"{source}: {_plural(n, 'row')} but {_plural(k, 'component')}; "
            "need at least one row per component"
        )


def _too_many_features(source: str, num_features: int) -> DataError:
    return DataError(
        f"{source}: {num_features} columns (features); bgmm fits at most {MAX_FEATURES}: each "
        "component has D(D+3)/2 mean and covariance parameters; reduce the features first "
        "(e.g. PCA), or check the delimiter and the orientation (one row per observation)"
    )


def check_num_features(num_features: int, source: str) -> None:
    """Refuse more than :data:`MAX_FEATURES` features, before anything of size D^2 exists.

    Parameters
    ----------
    num_features : int
        D.
    source : str
        Name of the data's file, used in error messages.

    Raises
    ------
    DataError
        If ``num_features > MAX_FEATURES``.
    """
    if int(num_features) > MAX_FEATURES:
        raise _too_many_features(source, int(num_features))


#: Largest |value| and smallest spread (standard deviation) of a feature that the model
#: handles in float64: covariances in data units are scale^2 times O(1) numbers, and their
#: inverses scale^-2 times, which must stay far from over- and underflow (1e+-308).
VALUE_LIMIT = 1e100
SPREAD_LIMIT = 1e-100


def check_value_range(data: np.ndarray, source: str, names: list[str] | None = None) -> None:
    """Refuse features whose values or spread float64 arithmetic cannot carry through a fit.

    Parameters
    ----------
    data : numpy.ndarray, shape (N, D)
        Finite values.
    source : str
        Name of the data's file, used in error messages.
    names : list of D str, optional
        Feature names for the messages.

    Raises
    ------
    DataError
        If some ``|value| > VALUE_LIMIT`` (its square, the variance, would overflow) or a
        non-constant column's standard deviation is below ``SPREAD_LIMIT`` (its inverse
        square, the precision, would overflow).
    """
    data = np.asarray(data, dtype=np.float64)
    magnitude = np.max(np.abs(data), axis=0)
    if np.any(magnitude > VALUE_LIMIT):
        j = int(np.argmax(magnitude > VALUE_LIMIT))
        raise DataError(
            f"{source}: column {_column(j, names)}: values as large as {magnitude[j]:.3g} "
            f"(bgmm handles up to {VALUE_LIMIT:g}); rescale the column"
        )
    spread = np.std(data - data.mean(axis=0), axis=0)
    tiny = (spread < SPREAD_LIMIT) & (spread > 0)
    if np.any(tiny):
        j = int(np.argmax(tiny))
        raise DataError(
            f"{source}: column {_column(j, names)}: standard deviation {spread[j]:.3g} is "
            f"below {SPREAD_LIMIT:g}, too small for float64 covariances; rescale the column"
        )


def _column(j: int, names: list[str] | None) -> str:
    """``'3 ('name')'`` for 0-based column ``j``."""
    if names is not None and j < len(names) and names[j]:
        return f"{j + 1} ({_show(names[j])})"
    return str(j + 1)


class DataWarning(UserWarning):
    """A property of the data that may make the fit misleading (not an error)."""


#: :func:`check_extreme_values` flags a feature when fewer than EXTREME_ROWS_FRACTION of the
#: rows hold more than EXTREME_VARIANCE_SHARE of its variance.
EXTREME_ROWS_FRACTION = 0.01
EXTREME_VARIANCE_SHARE = 0.99


def check_extreme_values(data: np.ndarray, names: list[str] | None = None) -> list[str]:
    """Features whose variance comes almost entirely from a few extreme values.

    The criterion: sort a column's squared deviations from its mean, (y_i - mean)^2, whose
    sum is N times its variance. The column is flagged when the largest m of them make up
    more than ``EXTREME_VARIANCE_SHARE`` (99%) of that sum, with m the largest count below
    ``EXTREME_ROWS_FRACTION`` (1%) of the rows, and at least 1 (one row for N <= 200, nine
    for N = 1000).
    Normal data never come close (one row of 200 normal draws holds a few percent); one
    value of 1e12 among values of order 1 is flagged. A real cluster of m or fewer far-off
    rows is flagged too: it is indistinguishable here, and worth a look either way.

    Why it matters: the default priors are set on the data standardised by each column's
    standard deviation; when a few values set that standard deviation, every other row sits
    at nearly one point in standardised units and the priors' scale fits none of the data.

    Each flagged feature gives one message, also issued as a :class:`DataWarning`.

    Parameters
    ----------
    data : numpy.ndarray, shape (N, D)
        Finite values.
    names : list of D str, optional
        Feature names for the messages (default: column numbers only).

    Returns
    -------
    list of str
        One line per flagged feature (without a ``warning:`` prefix), in column order.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"data must have shape (N, D), got {data.shape}")
    n = data.shape[0]
    m = max(1, math.ceil(EXTREME_ROWS_FRACTION * n) - 1)
    messages: list[str] = []
    if n < 2:
        return messages
    deviations = (data - data.mean(axis=0)) ** 2  # (N, D)
    with np.errstate(all="ignore"):
        total = deviations.sum(axis=0)
        top = -np.partition(-deviations, m - 1, axis=0)[:m] if m < n else deviations
        share = top.sum(axis=0) / total
    for j in np.flatnonzero((total > 0) & (share > EXTREME_VARIANCE_SHARE)):
        extreme = int(np.argmax(deviations[:, j]))
        rows = "1 row" if m == 1 else f"{m} rows"
        hold = "holds" if m == 1 else "hold"
        messages.append(
            f"column {_column(int(j), names)}: {rows} of {n} {hold} {100 * share[j]:.2f}% of its "
            f"variance (e.g. row {extreme + 1}: {data[extreme, j]:.6g}); the default priors "
            "scale to that variance, so the other rows look like one point: check these "
            "values, or transform the column (e.g. log) or remove them"
        )
    for message in messages:
        warnings.warn(message, DataWarning, stacklevel=2)
    return messages


def draws_memory_bytes(
    num_chains: int, num_draws: int, num_components: int, num_features: int
) -> int:
    """Memory the draws of a fit take at their peak, in bytes (an estimate, float64).

    The results hold about eight (C, S, K, D, D) arrays at once (Cholesky factors as sampled,
    in data units and relabelled; precisions; covariances; the summary's table; the NetCDF
    bytes), and the rest is small beside them.
    """
    per_draw = num_components * (num_features**2 * 8 + num_features * 2 + 4)
    return 8 * int(num_chains) * int(num_draws) * per_draw


def physical_memory_bytes() -> int | None:
    """Total memory of the machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_draws_memory(
    num_chains: int, num_draws: int, num_components: int, num_features: int
) -> None:
    """Refuse a run whose draws would not fit in this machine's memory.

    Raises
    ------
    ValueError
        Naming chains, draws, K and D, when :func:`draws_memory_bytes` exceeds the
        machine's memory (:func:`physical_memory_bytes`).
    """
    need = draws_memory_bytes(num_chains, num_draws, num_components, num_features)
    have = physical_memory_bytes()
    if have is not None and need > have:
        raise ValueError(
            f"{num_chains} chains x {num_draws} draws of K={num_components} components in "
            f"D={num_features} features need about {_format_bytes(need)} of memory for the "
            f"draws, more than this machine's {_format_bytes(have)}; use fewer chains, draws "
            "or features"
        )
