"""Give memory that the process has freed back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["release_free_heap"]


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
        return None


def release_free_heap() -> None:
    """Return the C heap's free pages to the system, where the C library allows (glibc).

    XLA's compiler frees some 0.2 GB of small allocations after compiling a sampler, but
    glibc keeps those pages in the process, so they would add to the peak while the
    sampler runs (measured on `bgmm fit` at N = 10^6, D = 8, K = 8: a 1.13 GiB peak without
    this, 0.97 GiB with it; docs/benchmarks.md). No library does this; on other C
    libraries it does nothing.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
