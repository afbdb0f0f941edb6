"""How problems with the data are reported: :class:`DataError`, :class:`DataWarning`, and
the wording their messages share."""

from __future__ import annotations

from bgmm.errors import UserError

__all__ = ["DataError", "DataWarning", "plural", "quoted"]

#: Cell texts longer than this are shortened in messages.
MAX_QUOTED_CHARS = 40


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


class DataWarning(UserWarning):
    """A property of the data that may make the fit misleading (not an error)."""


def quoted(cell: str) -> str:
    """``repr`` of a cell's text for a message, shortened with ``...`` when very long."""
    if len(cell) > MAX_QUOTED_CHARS:
        cell = cell[: MAX_QUOTED_CHARS - 3] + "..."
    return repr(cell)


def plural(count: int, word: str) -> str:
    """``'1 row'``, ``'2 rows'``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
