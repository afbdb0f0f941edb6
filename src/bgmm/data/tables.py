"""Reading a data file: its bytes, from a file or standard input, then a ``.npy`` array or
delimited text, into an ``(N, D)`` array of finite float64 values.

Every problem with the input becomes a :class:`~bgmm.data.errors.DataError` whose message
names the file and, where it applies, the line (CSV), row (``.npy``) and column of the
offending value.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO

import numpy as np

from bgmm.data.delimited import header_names, parse_delimited_text
from bgmm.data.errors import DataError
from bgmm.data.npy import NPY_MAGIC, parse_npy
from bgmm.plumbing import memory

__all__ = [
    "STDIN_NAME",
    "load_data",
    "load_table",
    "max_input_bytes",
    "parse_table",
    "read_input",
]

#: Name of standard input (``"-"``) in messages.
STDIN_NAME = "<stdin>"

#: Bytes read at a time; the first chunk alone decides whether the input is binary.
READ_CHUNK_BYTES = 2**20

#: Byte-order marks of UTF-16 and UTF-32 text, longest first (UTF-32 LE starts with UTF-16 LE's).
WIDE_TEXT_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


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
        Array of shape ``(N, D)`` with ``N >= 1`` and ``1 <= D <= MAX_FEATURES``
        (:data:`bgmm.data.checks.MAX_FEATURES`), dtype float64, all values finite.

    Raises
    ------
    DataError
        If the file is missing or unreadable, is larger than :func:`max_input_bytes`, is
        not valid UTF-8 text (CSV) or a valid ``.npy`` file, is empty, has no data rows,
        has rows of different lengths, has more than ``MAX_FEATURES`` columns, or
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

    Parameters
    ----------
    path : str or os.PathLike
        The file, or ``"-"`` for standard input.

    Returns
    -------
    raw : bytes
    source : str
        The name used in messages: the path as given, or ``<stdin>``.

    Raises
    ------
    DataError
        If the file is missing, a directory, unreadable or too large, or its first chunk is
        UTF-16/32 text or binary data.
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

    Raises
    ------
    DataError
        As :func:`load_data` does, for everything but reading.
    """
    suffix = os.path.splitext(source)[1].lower()
    if suffix == ".npy" or raw.startswith(NPY_MAGIC):
        return parse_npy(raw, source), None
    if suffix == ".npz":
        raise DataError(
            f"{source}: .npz archives are not supported; save a single array with "
            "numpy.save (.npy) or write a CSV file"
        )
    text = _decode_utf8(raw, source)
    data = parse_delimited_text(text, source)
    return data, header_names(text)


def max_input_bytes() -> int:
    """The largest input read: a quarter of the machine's memory (8 GiB if unknown).

    Parsing a CSV file takes several times its size in memory; beyond this the machine
    would swap or the process be killed, so bgmm stops with a message instead.
    """
    # Looked up in bgmm.plumbing.memory at each call: patching it there changes this limit too.
    total = memory.physical_memory_bytes()
    return 8 * 2**30 if total is None else max(total // 4, 2**20)


def _read_stream(f: BinaryIO, source: str, limit: int) -> bytes:
    """Read ``f`` to its end in chunks, refusing binary streams and inputs over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = f.read(READ_CHUNK_BYTES)
        except IsADirectoryError:
            raise  # read_input names it
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
                f"{source}: larger than {memory.format_bytes(limit)}, the most bgmm reads on this "
                "machine (a quarter of its memory)"
            )
        chunks.append(chunk)


def _refuse_binary_start(head: bytes, source: str) -> None:
    """Refuse UTF-16/32 text and binary data (a NUL byte) in ``head``, unless it starts as a
    NumPy file does."""
    if head.startswith(NPY_MAGIC):
        return
    for bom, name in WIDE_TEXT_BOMS:
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


def _decode_utf8(raw: bytes, source: str) -> str:
    """UTF-8 text of a CSV file (a leading BOM dropped), or a :class:`DataError`."""
    _refuse_binary_start(raw, source)  # all of it: a NUL byte after the first chunk too
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start]
        raise DataError(
            f"{source}: line {line}: not valid UTF-8 text (byte 0x{byte:02x}); "
            "expected a UTF-8 CSV file or a .npy file"
        ) from None
