"""Checks on loaded data: its size against the model's, its values against float64's range,
and a warning for features dominated by a few extreme values.

Each check raises a :class:`~bgmm.data.errors.DataError` (with ``option`` set where an option
of :class:`bgmm.BayesianGMM` is at fault) or, for :func:`check_extreme_values`, issues a
:class:`~bgmm.data.errors.DataWarning`.
"""

from __future__ import annotations

import math
import operator
import warnings

import numpy as np

from bgmm.data.errors import DataError, DataWarning, plural, quoted

__all__ = [
    "EXTREME_ROWS_FRACTION",
    "EXTREME_VARIANCE_SHARE",
    "MAX_FEATURES",
    "SPREAD_LIMIT",
    "VALUE_LIMIT",
    "check_extreme_values",
    "check_num_components",
    "check_num_features",
    "check_value_range",
    "too_many_features_error",
]

#: The most features (columns) bgmm fits. The likelihood's per-observation feature vector has
#: 1 + D + D^2 entries and each component 1 + D + D(D+1)/2 parameters: beyond D = 1000 that is
#: over 10^6 and 5 x 10^5, more than HMC can explore and, at the default 4 x 1000 draws,
#: tens of GiB of draws per component.
MAX_FEATURES = 1000

#: Largest |value| and smallest spread (standard deviation) of a feature that the model
#: handles in float64: covariances in data units are scale^2 times O(1) numbers, and their
#: inverses scale^-2 times, which must stay far from over- and underflow (1e+-308).
VALUE_LIMIT = 1e100
SPREAD_LIMIT = 1e-100

#: :func:`check_extreme_values` flags a feature when fewer than EXTREME_ROWS_FRACTION of the
#: rows hold more than EXTREME_VARIANCE_SHARE of its variance.
EXTREME_ROWS_FRACTION = 0.01
EXTREME_VARIANCE_SHARE = 0.99


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
        If ``K < 1`` or ``N < K``; the message starts with ``source``, the data being
        what a user changes (``option`` is None).
    """
    k = operator.index(num_components)
    if k < 1:
        raise DataError(f"{source}: the number of components must be at least 1, got {k}")
    n = int(np.shape(data)[0])
    if n < k:
        raise DataError(
            f"{source}: {plural(n, 'row')} but {plural(k, 'component')}; "
            "need at least one row per component"
        )


def too_many_features_error(source: str, num_features: int) -> DataError:
    """The error for data of ``num_features > MAX_FEATURES`` columns, from whichever reader
    finds it first."""
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
        raise too_many_features_error(source, int(num_features))


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
    magnitude = np.max(np.abs(data), axis=0)  # (D,)
    if np.any(magnitude > VALUE_LIMIT):
        j = int(np.argmax(magnitude > VALUE_LIMIT))
        raise DataError(
            f"{source}: column {_column_label(j, names)}: values as large as {magnitude[j]:.3g} "
            f"(bgmm handles up to {VALUE_LIMIT:g}); rescale the column"
        )
    spread = np.std(data - data.mean(axis=0), axis=0)  # (D,)
    tiny = (spread < SPREAD_LIMIT) & (spread > 0)  # constant columns are Standardizer's to refuse
    if np.any(tiny):
        j = int(np.argmax(tiny))
        raise DataError(
            f"{source}: column {_column_label(j, names)}: standard deviation {spread[j]:.3g} is "
            f"below {SPREAD_LIMIT:g}, too small for float64 covariances; rescale the column"
        )


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

    Raises
    ------
    ValueError
        If ``data`` is not two-dimensional.
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
    with np.errstate(all="ignore"):  # a constant column: 0 / 0, excluded below
        total = deviations.sum(axis=0)  # (D,)
        top = -np.partition(-deviations, m - 1, axis=0)[:m] if m < n else deviations  # (m, D)
        share = top.sum(axis=0) / total  # (D,)
    for j in np.flatnonzero((total > 0) & (share > EXTREME_VARIANCE_SHARE)):
        extreme = int(np.argmax(deviations[:, j]))
        rows = "1 row" if m == 1 else f"{m} rows"
        hold = "holds" if m == 1 else "hold"
        messages.append(
            f"column {_column_label(int(j), names)}: {rows} of {n} {hold} {100 * share[j]:.2f}% "
            f"of its variance (e.g. row {extreme + 1}: {data[extreme, j]:.6g}); the default "
            "priors scale to that variance, so the other rows look like one point: check these "
            "values, or transform the column (e.g. log) or remove them"
        )
    for message in messages:
        warnings.warn(message, DataWarning, stacklevel=2)
    return messages


def _column_label(j: int, names: list[str] | None) -> str:
    """``"3 ('name')"`` for 0-based column ``j`` (``'3'`` without a name)."""
    if names is not None and j < len(names) and names[j]:
        return f"{j + 1} ({quoted(names[j])})"
    return str(j + 1)
