"""A progress bar of chain steps on stderr, or one that shows nothing."""

from __future__ import annotations

import sys

__all__ = ["progress_bar"]


class _NoBar:
    """A progress bar that shows nothing."""

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool):
    """A tqdm bar of ``total`` chain steps on stderr, or one that shows nothing."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm  # an edge dependency, only when a terminal asks for it

    return tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True, leave=False)
