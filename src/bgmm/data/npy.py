"""Parsing the bytes of a NumPy ``.npy`` file, without unpickling, into validated data."""

from __future__ import annotations

import io
import math

import numpy as np

from bgmm.data.checks import MAX_FEATURES, too_many_features_error
from bgmm.data.errors import DataError

__all__ = ["NPY_MAGIC", "as_finite_table", "parse_npy"]

#: The first bytes of every ``.npy`` file.
NPY_MAGIC = b"\x93NUMPY"


def parse_npy(raw: bytes, source: str) -> np.ndarray:
    """Read the bytes of a ``.npy`` file into a validated float64 array.

    Parameters
    ----------
    raw : bytes
        The whole file.
    source : str
        Its name, for messages.

    Returns
    -------
    numpy.ndarray, shape (N, D)
        float64, finite, ``N >= 1``, ``1 <= D <= MAX_FEATURES``; an array of shape ``(N,)``
        is read as ``(N, 1)``.

    Raises
    ------
    DataError
        If the file is empty, not a valid ``.npy`` file (or shorter than its header says),
        holds Python objects, booleans or another non-numeric dtype, is not 1-D or 2-D, has
        no rows or columns or too many columns, or holds a NaN or infinite value (named by
        row and column).
    """
    if not raw:
        raise DataError(f"{source}: file is empty")
    if not raw.startswith(NPY_MAGIC):
        raise DataError(
            f"{source}: not a valid .npy file (it does not start with the NumPy format header)"
        )
    _check_header_claims(raw, source)
    array = _read_array(raw, source)
    return as_finite_table(array, source)


def _header(raw: bytes) -> tuple[tuple[int, ...], np.dtype, int] | None:
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


def _check_header_claims(raw: bytes, source: str) -> None:
    """Refuse what the header claims before reading: ``read_array`` allocates it, so a
    hostile or truncated header could ask for terabytes."""
    header = _header(raw)
    if header is None:
        return
    shape, dtype, offset = header
    if dtype.hasobject:
        raise DataError(f"{source}: not a numeric array (the .npy file holds Python objects)")
    if len(shape) == 2 and shape[1] > MAX_FEATURES:
        raise too_many_features_error(source, shape[1])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - offset < expected:
        raise DataError(
            f"{source}: not a valid .npy file (truncated: its header says shape {shape} "
            f"of {dtype}, {expected} bytes, but {len(raw) - offset} follow)"
        )


def _read_array(raw: bytes, source: str) -> np.ndarray:
    """The array stored in ``raw``, of any shape and dtype, without unpickling."""
    try:
        return np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(
                f"{source}: not a numeric array (the .npy file holds Python objects)"
            ) from None
        raise DataError(f"{source}: not a valid .npy file ({exc})") from None
    except (OSError, EOFError, SyntaxError, TypeError) as exc:
        raise DataError(f"{source}: not a valid .npy file ({exc})") from None


def as_finite_table(array: np.ndarray, source: str, first_row: int = 0) -> np.ndarray:
    """``array`` as a validated ``(N, D)`` float64 array (``(N,)`` read as ``(N, 1)``);
    messages count its rows from ``first_row`` (0-based: the rows of a file's block)."""
    kind = array.dtype.kind
    if kind == "b":
        raise DataError(f"{source}: array holds booleans; expected numbers (integer or float)")
    if kind not in "iuf":
        raise DataError(
            f"{source}: array has dtype {array.dtype}; expected numbers (integer or float)"
        )
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    elif array.ndim != 2:
        raise DataError(
            f"{source}: array has shape {array.shape}; expected a 1-D (N,) or 2-D (N, D) array"
        )
    if array.shape[0] == 0:
        raise DataError(f"{source}: array has no rows (shape {array.shape})")
    if array.shape[1] == 0:
        raise DataError(f"{source}: array has no columns (shape {array.shape})")
    if array.shape[1] > MAX_FEATURES:
        raise too_many_features_error(source, array.shape[1])

    data = np.ascontiguousarray(array, dtype=np.float64)
    finite = np.isfinite(data)
    if not finite.all():
        r, c = np.unravel_index(int(np.argmin(finite)), finite.shape)
        where = f"{source}: row {first_row + r + 1}, column {c + 1}"
        if np.isnan(data[r, c]):
            raise DataError(f"{where}: missing value (NaN)")
        raise DataError(f"{where}: value {array[r, c]} is not finite")
    return data
