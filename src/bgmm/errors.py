"""The one error type for what the user got wrong.

A :class:`UserError` is bad input or a bad option: the message names the option, the file
(and the row and column where they apply) and what was expected. The ``bgmm`` command shows
it as one ``error:`` line with exit code 2. Every other exception is a bug in bgmm and is
shown as one, with its traceback.
"""

from __future__ import annotations

__all__ = ["NotFittedError", "UserError"]


class UserError(ValueError):
    """Bad input or a bad option, described in one line.

    A ``ValueError``, as scikit-learn and numpy raise for bad arguments, so that code
    catching those keeps working.

    Parameters
    ----------
    message : str
        What is wrong and what was expected; line breaks are escaped so that it is always
        one line.
    option : str, optional
        The :class:`bgmm.config.RunConfig` field (or keyword argument) at fault.
        ``str(error)`` starts with it (``"num_chains: expected ..."``); the CLI names it
        by its flag instead (``"--chains: expected ..."``).

    Attributes
    ----------
    message : str
        The message without the option's name.
    option : str or None
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        self.message = message.replace("\r", "\\r").replace("\n", "\\n")
        self.option = option
        super().__init__(f"{option}: {self.message}" if option else self.message)


class NotFittedError(ValueError, AttributeError):
    """A fitted estimator's method called before ``fit`` (a ValueError and an
    AttributeError, as scikit-learn's ``NotFittedError`` is)."""
