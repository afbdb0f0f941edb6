"""float64 for bgmm's own work, without changing the host's JAX configuration.

The model is run in float64 by default (as in the TFP tutorial), which JAX allows only in
its 64-bit mode. Turning that mode on globally would change the user's own code (their
``jnp.zeros(1)`` would become float64), so bgmm turns it on only around its own calls:
:func:`float64_scope` wraps a function in ``jax.enable_x64(True)``, a context local to the
calling thread. float32 runs ask for their dtype explicitly and are unaffected.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import jax

__all__ = ["float64_scope"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def float64_scope(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` run with JAX's 64-bit mode on, and the caller's mode back afterwards."""

    @functools.wraps(fn)
    def scoped(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return scoped
