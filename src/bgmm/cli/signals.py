"""Signals for a run with no checkpoint to write: noted, then raised once armed.

The runs that keep a checkpoint stop after their chunk (:func:`bgmm.checkpoint.stop_on_signal`);
a run on split rows has no state to save, so a signal ends it at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

__all__ = ["SignalLatch", "interrupt_on_signal"]


class SignalLatch(NamedTuple):
    """What :func:`interrupt_on_signal` yields.

    Attributes
    ----------
    interrupted : () -> bool
        Whether one of the signals came.
    arm : () -> None
        From now on a signal raises KeyboardInterrupt at once; raises it here if one came
        before.
    """

    interrupted: Callable[[], bool]
    arm: Callable[[], None]


@contextlib.contextmanager
def interrupt_on_signal(signals: Sequence[int] = (signal.SIGINT,)) -> Iterator[SignalLatch]:
    """Within the block, any of ``signals`` is noted and, once armed, raises
    KeyboardInterrupt at once: for a run with no checkpoint to write (split rows), whatever
    the handlers it inherited (SIGTERM would end it without cleaning up).

    Until ``arm()`` a signal is only noted, so that the block can first take in hand what
    it must clean up (``--out``). Masking the signals would not do: another thread may take
    them, and Python then runs the handler in the main thread anyway. A raise can also be
    lost: in a garbage-collector callback (JAX registers one) Python drops the exception,
    so the block checks ``interrupted()`` where it can; such a dropped KeyboardInterrupt is
    not printed (no traceback for the user). The previous handlers and hook come back on
    exit; outside the main thread nothing is installed and ``interrupted`` stays False.
    """
    requested, armed = threading.Event(), threading.Event()

    def arm() -> None:
        armed.set()
        if requested.is_set():
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield SignalLatch(requested.is_set, armed.set)
        return

    def handle(signum, frame):
        requested.set()
        if armed.is_set():
            raise KeyboardInterrupt

    previous_hook = sys.unraisablehook

    def unraisable(info):
        if not isinstance(info.exc_value, KeyboardInterrupt):
            previous_hook(info)

    previous = {signum: signal.signal(signum, handle) for signum in signals}
    sys.unraisablehook = unraisable
    try:
        yield SignalLatch(requested.is_set, arm)
    finally:
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)
